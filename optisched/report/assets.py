"""What every report page carries: its style sheet, its script (sortable and
filterable tables, the plotly figures, the node view) and plotly.js."""

from __future__ import annotations

__all__ = ["CSS", "JS", "plotly_js"]


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1360px;padding:0 16px 2em;color:#222;box-sizing:border-box}
h1{font-size:1.45em;margin:.6em 0 .3em}h3{font-size:1em;margin:.2em 0 .4em}
h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.4em;font-size:1.2em}
nav{position:sticky;top:0;background:#fff;padding:.4em 0;border-bottom:1px solid #eee;z-index:5;
font-size:.9em}nav a{margin-right:.9em;white-space:nowrap}
img{max-width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;font-size:12px;margin:.3em 0}
th,td{border:1px solid #ddd;padding:2px 5px;vertical-align:top}
th{background:#f4f4f4;cursor:pointer;font-weight:600;text-align:left}
table.sortable th{white-space:normal;max-width:7.5em;line-height:1.15}
table.sortable th[data-dir=asc]::after{content:" ▲"}
table.sortable th[data-dir=desc]::after{content:" ▼"}
thead th{position:sticky;top:0;z-index:1}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.w{min-width:16em;max-width:30em;white-space:normal}
.tablewrap{max-width:100%;overflow:auto;border:1px solid #e4e4e4}
.tablewrap.tall{max-height:34em}.tablewrap.short{max-height:18em}
.tablewrap table{margin:0}
table.kv th{cursor:default;white-space:nowrap}
.bad{color:#b00020;font-weight:bold}.ok{color:#1b7f3b}.note{color:#555;font-size:.9em}
input.filter{margin:.3em 0;padding:.25em;width:22em}.count{color:#777;font-size:.85em}
.row{display:flex;gap:1.5em;flex-wrap:wrap;align-items:flex-start}.row>div{min-width:0}
.grow{flex:1 1 500px}.fig{width:100%;min-height:200px}
.picks{display:flex;flex-wrap:wrap;gap:.4em 1.4em;font-size:.9em;margin:.3em 0}
button.pick{font-size:.85em;margin:1px;cursor:pointer}
select{font-size:1em;padding:.15em}
"""


# vanilla JS: sortable/filterable tables, plotly figures, the node view
JS = r"""
function rowsOf(t){return Array.from(t.tBodies[0].rows);}
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th){
    th.addEventListener('click',function(){
      var col=+th.dataset.col, asc=th.dataset.dir!=='asc';
      t.querySelectorAll('th').forEach(function(h){delete h.dataset.dir});
      th.dataset.dir=asc?'asc':'desc';
      var body=t.tBodies[0], rows=rowsOf(t);
      rows.sort(function(a,b){
        var x=a.cells[col], y=b.cells[col];
        var u=x.dataset.v!==undefined?parseFloat(x.dataset.v):x.textContent;
        var v=y.dataset.v!==undefined?parseFloat(y.dataset.v):y.textContent;
        var r=(typeof u==='number'&&typeof v==='number')?u-v:String(u).localeCompare(String(v));
        return asc?r:-r;});
      rows.forEach(function(r){body.appendChild(r)});
    });
  });
});
document.querySelectorAll('input.filter').forEach(function(inp){
  inp.addEventListener('input',function(){
    var q=inp.value.toLowerCase(), t=document.getElementById(inp.dataset.table), n=0;
    rowsOf(t).forEach(function(r){
      var show=r.textContent.toLowerCase().indexOf(q)>=0; r.style.display=show?'':'none';
      if(show)n++;});
    var c=document.getElementById(inp.dataset.table+'-count'); if(c)c.textContent=n+' rows';
  });
});
var D=JSON.parse(document.getElementById('report-data').textContent);
var CFG={responsive:true,displaylogo:false,scrollZoom:false};
if(window.Plotly){
  Object.keys(D.figs).forEach(function(id){
    var el=document.getElementById(id), f=D.figs[id];
    if(el)Plotly.newPlot(el,f.data,f.layout,CFG);
  });
}
function base(title,h){return {title:{text:title,font:{size:14},x:0.01,xanchor:'left'},
  height:h,margin:{l:60,r:20,t:40,b:45},legend:{orientation:'h',y:-0.12,yanchor:'top',
  font:{size:11}},
  hovermode:'x unified',font:{size:11},plot_bgcolor:'#fff'};}
function xaxis(){return {type:'date',gridcolor:'#eee',range:[D.x[0],D.x[D.x.length-1]],
  tickformat:D.days>1?'%H:%M\n%a %d %b':'%H:%M'};}
function area(name,y,colour,group){return {type:'scatter',x:D.x,y:y,mode:'lines',stackgroup:group,
  name:name,line:{width:0.5,shape:'hv',color:colour},fillcolor:colour};}
function nz(a){return a.some(function(v){return v!==null&&Math.abs(v)>1e-6;});}
function showNode(k){
  var n=D.nodes[k]; if(!n||!window.Plotly)return;
  document.getElementById('node-select').value=String(k);
  var s=n.stats;
  document.getElementById('nv-stats').textContent=n.kind+', '+n.gpus+' GPUs; '+s[0]+' jobs, '+
    s[1]+' GPU-h, load '+s[2]+' kWh (PV '+s[3]+', battery '+s[4]+', grid '+s[5]+'), cost '+s[6]+
    '; feeder '+s[7]+', region '+s[8];
  var tr=[], top=0, lo=0;
  if(n.head){tr.push({type:'scatter',x:D.x,y:n.imp,mode:'lines',line:{width:0,shape:'hv'},
      showlegend:false,hoverinfo:'skip'});
    tr.push({type:'scatter',x:D.x,y:n.head,mode:'lines',fill:'tonexty',
      fillcolor:'rgba(213,94,0,0.10)',line:{width:1,dash:'dot',color:'#D55E00',shape:'hv'},
      name:'import limit (headroom); band = spare'});}
  var sup=[['PV used [kW]',n.pv,'#E69F00'],['battery discharge [kW]',n.dis,'#009E73'],
           ['grid import [kW]',n.imp,'#0072B2']];
  var sink=[['battery charge [kW]',n.chg,'#56B4E9'],['grid export [kW]',n.exp,'#CC79A7']];
  var tot=n.load.map(function(){return 0;}), neg=tot.slice();
  sup.forEach(function(q){if(nz(q[1])){tr.push(area(q[0],q[1],q[2],'s'));
    q[1].forEach(function(v,i){tot[i]+=v||0;});}});
  sink.forEach(function(q){if(nz(q[1])){tr.push(area(q[0],q[1],q[2],'k'));
    q[1].forEach(function(v,i){neg[i]+=v||0;});}});
  tr.push({type:'scatter',x:D.x,y:n.load,mode:'lines',name:'load [kW]',
    line:{color:'#000',width:1.5,shape:'hv'}});
  top=Math.max.apply(null,tot.concat(n.load.map(function(v){return v||0;})));
  lo=Math.min.apply(null,neg);
  if(n.head){var hm=Math.min.apply(null,n.head.filter(function(v){return v!==null;}));
    var hx=Math.max.apply(null,n.head.filter(function(v){return v!==null;}));
    if(hm<=3*Math.max(top,1e-9))top=Math.max(top,hx<=3*Math.max(top,1e-9)?hx:top);}
  if(top<=0)top=1;
  var lp=base('power: '+n.id+' [kW] · local time '+D.zone,330); lp.xaxis=xaxis();
  lp.yaxis={title:{text:'power [kW]'},range:[lo<0?lo*1.1:0,top*1.15],gridcolor:'#eee'};
  Plotly.react('nv-power',tr,lp,CFG);
  var lb=base('battery: '+n.id+(n.battery>0?' ('+n.battery+' kWh)':' — no battery'),
              n.battery>0?260:120);
  lb.xaxis=xaxis();
  if(n.battery>0){
    var e=n.battery;
    var bt=[{type:'scatter',x:D.x,y:n.soc,mode:'lines+markers',marker:{size:3},
        line:{color:'#009E73'},name:'state of charge [kWh]'},
      {type:'scatter',x:[D.x[0],D.x[D.x.length-1]],y:[n.soc_min,n.soc_min],mode:'lines',
        line:{color:'#D55E00',dash:'dash'},name:'reserve (soc_min)'},
      {type:'scatter',x:[D.x[0],D.x[D.x.length-1]],y:[n.soc_max,n.soc_max],mode:'lines',
        line:{color:'#666',dash:'dash'},name:'max (soc_max)'}];
    lb.yaxis={title:{text:'state of charge [kWh]'},range:[0,e*1.05],gridcolor:'#eee'};
    Plotly.react('nv-battery',bt,lb,CFG);
  } else {
    lb.yaxis={visible:false}; lb.annotations=[{text:'no battery',showarrow:false,
      xref:'paper',yref:'paper',x:0.5,y:0.5}];
    Plotly.react('nv-battery',[],lb,CFG);
  }
  var groups={};
  n.lanes.forEach(function(q){var jb=D.jobs[q[0]];var g=groups[jb.kind]||(groups[jb.kind]=
    {type:'bar',orientation:'h',name:jb.kind,base:[],x:[],y:[],width:[],customdata:[],
     marker:{color:D.jobKinds[jb.kind],line:{color:'#333',width:0.5}},
     hovertemplate:'%{customdata}<extra></extra>'});
    var t0=Date.parse(D.x[q[1]].replace(' ','T')), t1=Date.parse(D.x[q[2]].replace(' ','T'));
    g.base.push(D.x[q[1]]); g.x.push(t1-t0); g.y.push(q[3]+q[4]/2); g.width.push(q[4]*0.92);
    g.customdata.push('<b>'+jb.id+'</b> ('+jb.kind+', '+jb.gpus+' GPUs)<br>'+D.x[q[1]].slice(11)+
      ' – '+D.x[q[2]].slice(11)+'<br>energy '+jb.e+' kWh, cost '+jb.c);});
  var jt=Object.keys(groups).sort().map(function(k){return groups[k];});
  var lj=base('jobs on '+n.id+' ('+n.lanes.length+' jobs, one lane per GPU'+
    (n.gpus>64?' group':'')+')',Math.min(700,Math.max(200,110+14*Math.min(n.gpus,64))));
  lj.xaxis=xaxis(); lj.xaxis.range=[D.x[0],D.x[D.x.length-1]]; lj.hovermode='closest';
  lj.barmode='overlay';
  lj.yaxis={title:{text:'GPU lane'},range:[-0.5,n.gpus+0.5],gridcolor:'#f3f3f3',zeroline:false};
  if(!jt.length)lj.annotations=[{text:'no jobs on this node',showarrow:false,xref:'paper',
    yref:'paper',x:0.5,y:0.5}];
  Plotly.react('nv-jobs',jt,lj,CFG);
}
var sel=document.getElementById('node-select');
if(sel){sel.addEventListener('change',function(){showNode(+sel.value);});
  document.querySelectorAll('button.pick').forEach(function(b){
    b.addEventListener('click',function(){showNode(+b.dataset.node);});});
  showNode(D.first);}
"""


def plotly_js() -> str:
    """The plotly.js bundle, inlined once in an interactive page."""
    # plotly is a dependency; imported here because reading its 4.8 MB bundle is only
    # needed for an interactive page (a static page or --png alone never loads it)
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())
