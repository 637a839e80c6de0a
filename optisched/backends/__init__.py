"""Adapters to the numerical solvers (one module per backend).

:mod:`optisched.backends.highs` is the one place where optisched talks to HiGHS.
"""
