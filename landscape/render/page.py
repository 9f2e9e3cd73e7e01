"""The page around every interactive figure: title, settings line, the Plotly figure, and a layout that works from a
phone to a wide monitor.

On a wide window the figure fills the window below the title (nothing to scroll), unless the page asks for
full-size panels (``tall``: a grid of panels, e.g. the comparison's 3D views above its contour maps): then each panel
is as wide as its column allows (at most as tall as the window, so one is seen whole) and the page scrolls down
instead of shrinking the panels to fit the window's height beside blank columns. On a narrow one (below a
breakpoint that depends on how many panels sit side by side) the page scrolls instead and a small script re-lays the
same figure out: the panels (3D scenes and x/y plots) one below the other, all of one width, each with its title
above it and its colour bar beside it, the legend below the last panel, fixed margins. Going back to a wide window
restores the figure's own layout. The figure stays one Plotly figure (one div, one set of frames for a movie, 3D
views that rotate together) and everything is inline: the page still works offline as one file.
"""

from __future__ import annotations

import html
import json
import re

from landscape.paths import atomic_open

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>html,body{{height:100%;margin:0}}
body{{font-family:system-ui,sans-serif;color:#222;display:flex;flex-direction:column;box-sizing:border-box;
padding:.6em 1em;overflow:hidden}}
h1{{font-size:1.15em;margin:0 0 .2em;overflow-wrap:anywhere}}
.settings{{display:flex;flex-wrap:wrap;gap:.2em .5em;font-size:.75em;margin:.1em 0 .3em;color:#444}}
.settings span{{background:#f3f3f3;border-radius:3px;padding:0 5px;overflow-wrap:anywhere;max-width:100%;
box-sizing:border-box}}
.note{{font-size:.75em;color:#8a4b00;margin:0 0 .3em}}
.figure{{flex:1 1 auto;min-height:0;position:relative}}
.figure>div{{position:absolute;inset:0}}
body.narrow{{height:auto;overflow-x:hidden;overflow-y:auto;padding:.4em .5em}}
body.narrow .figure,body.tall .figure{{flex:none}}
body.tall{{height:auto;overflow-x:hidden;overflow-y:auto}}</style></head>
<body><h1>{title}</h1>{settings}<div class="figure">{figure}</div>
<script>{script}</script>
</body></html>"""

# The narrow layout, computed from the window's width (CSS pixels) and the panels found in the figure (SPEC).
STACK = """
(function(){var gd=document.getElementById('landscape-figure');if(!gd||!window.Plotly)return;
var S=%s,box=gd.parentNode,mode=null,saved=null,MT=Math.max(34,S.top),TITLE=24,AXIS=46,BAR=112,ROW=22,GAP=14;
function get(o,p){p=p.replace(/\\[(\\d+)\\]/g,'.$1').split('.');for(var i=0;i<p.length;i++){
 if(o==null)return null;o=o[p[i]];}return o===undefined?null:o;}
function narrow(w){var pw=Math.max(w-(S.xy?52:8)-S.right,200),y=0,lay={},sty={},idx=[],bars=[],tops=[];
 // a panel with a colour bar leaves BAR pixels at its right for it: the bar keeps its orientation (turning it
 // horizontal leaves pieces of the vertical one drawn)
 var any=S.panels.some(function(p){return p.bars.length;});
 // every panel as wide as one beside a colour bar: panels of one figure compare at one size; each with its bar
 // (a spare one, hidden while the panels sit side by side, shown now)
 S.panels.forEach(function(p){var top=y+TITLE,cw=any?pw-BAR:pw,h=Math.round(cw*p.ratio),bottom=top+h;
  tops.push([p,top,bottom,cw/pw]);p.bars.concat(p.spare).forEach(function(t){bars.push([t,top,bottom]);});
  y=bottom+(p.xy?AXIS:0)+GAP;});
 var legend=S.legend*ROW,H=y+legend,f=function(px){return 1-px/H;};
 tops.forEach(function(e){var p=e[0],d=[f(e[2]),f(e[1])],x=[0,e[3]];
  if(p.scene)lay[p.scene+'.domain']={x:x,y:d};else{lay[p.x+'.domain']=x;lay[p.y+'.domain']=d;}
  p.titles.forEach(function(a){lay['annotations['+a+'].x']=e[3]/2;lay['annotations['+a+'].xanchor']='center';
   lay['annotations['+a+'].y']=d[1];lay['annotations['+a+'].yanchor']='bottom';});});
 if(S.legend){lay['legend.orientation']='h';lay['legend.x']=0;lay['legend.xanchor']='left';
  lay['legend.y']=f(y);lay['legend.yanchor']='top';lay['legend.yref']='paper';}
 // fixed margins: the zones above were measured for them (an expanding margin would move every panel)
 lay['margin.t']=MT;lay['margin.b']=S.margin_b;lay['margin.l']=S.xy?52:8;lay['margin.r']=S.right;
 lay['margin.autoexpand']=false;
 bars.forEach(function(b){idx.push(b[0]);});
 if(idx.length){var cb={'colorbar.x':1,'colorbar.xanchor':'right','colorbar.yanchor':'middle',
   'colorbar.lenmode':'fraction','colorbar.thickness':12,'showscale':true};for(var k in cb)sty[k]=idx.map(function(){return cb[k];});
  sty['colorbar.y']=bars.map(function(b){return (f(b[1])+f(b[2]))/2;});
  sty['colorbar.len']=bars.map(function(b){return 0.9*(b[2]-b[1])/H;});}
 return {lay:lay,sty:sty,idx:idx,height:H+MT+lay['margin.b']};}
// full-size panels (S.tall): the figure's height at which every panel is as wide as its column (at most the
// window's height, so each is seen whole): taller than the window, the page scrolls; shorter, the page ends below
// it (filling a tall window instead would put blank bands between the rows)
function tallHeight(){var T=S.tall;if(!T)return 0;var pw=box.clientWidth-T.l-T.r,cap=window.innerHeight-T.t-24,
 ph=0;T.rects.forEach(function(q){ph=Math.max(ph,Math.min((q[1]-q[0])*pw*q[4],cap)/(q[3]-q[2]));});
 return Math.ceil(ph+T.t+T.b);}
function fitTall(){var h=tallHeight(),now=box.style.height;document.body.classList.toggle('tall',h>0);
 box.style.height=h?h+'px':'';if(box.style.height!==now)Plotly.Plots.resize(gd);}
function wide(){var lay={},sty={};for(var k in saved.lay)lay[k]=saved.lay[k];
 for(var s in saved.sty)sty[s]=saved.sty[s];return {lay:lay,sty:sty,idx:saved.idx};}
function apply(){var n=window.innerWidth<S.breakpoint,w=box.clientWidth||window.innerWidth,u;
 if(!n&&mode!=='narrow'){mode='wide';fitTall();return;}
 if(n&&mode==='narrow'&&window.innerWidth===last)return;  // a change of height only: nothing to re-lay
 last=window.innerWidth;
 if(n){u=narrow(w);if(!saved){saved={lay:{},sty:{},idx:u.idx};
   for(var k in u.lay)saved.lay[k]=k in S.wide?S.wide[k]:get(gd.layout,k);
   for(var s in u.sty)saved.sty[s]=u.idx.map(function(i){return get(gd.data[i],s);});}
  document.body.classList.add('narrow');box.style.height=u.height+'px';}
 else{u=wide();document.body.classList.remove('narrow');box.style.height='';}
 if(n)document.body.classList.remove('tall');
 mode=n?'narrow':'wide';
 // resize to the new height first: square axes shrink their domain to the plot area as they find it
 var go=function(){var r=u.idx.length?Plotly.update(gd,u.sty,u.lay,u.idx):Plotly.relayout(gd,u.lay);
  return n?r:Promise.resolve(r).then(fitTall);};
 Plotly.Plots.resize(gd).then(go,go);}
// An orthographic 3D scene is scaled to its height (the box as large as a square scene of that height would draw
// it), so a scene wider than high left its box small between blank bands: scale each box to its scene's width too,
// as far as a box turned any way still fits with its axis titles (its widest view is 9 %% wider than the first).
var boxes={};
function fitBoxes(){var fl=gd._fullLayout,s=fl._size,u={};Object.keys(fl).forEach(function(k){
 if(!/^scene\\d*$/.test(k))return;if(!boxes[k]){var a=get(gd.layout,k+'.aspectratio');if(!a)return;
  boxes[k]={x:a.x,y:a.y,z:a.z};}
 var d=fl[k].domain,w=(d.x[1]-d.x[0])*s.w,h=(d.y[1]-d.y[0])*s.h,z=Math.max(0.5,Math.min(1.4,1.15*w/Math.max(h,1)));
 var b=boxes[k],c=fl[k].aspectratio;z=Math.round(z*100)/100;
 if(!c||Math.abs(c.x-b.x*z)>0.01)u[k+'.aspectratio']={x:b.x*z,y:b.y*z,z:b.z*z};});
 if(Object.keys(u).length)Plotly.relayout(gd,u);}
// On a wide window a map's colour bar spans the map as drawn: a square map of a flat plane (a trajectory's PCA
// plane, 3:1) is short, and a bar of the figure's height beside it left blank bands above and below it.
function fitBars(){if(mode==='narrow')return;var fl=gd._fullLayout,idx=[],ys=[],ls=[];
 S.panels.forEach(function(p){if(!p.xy||!p.bars.length||!fl[p.y])return;var d=fl[p.y].domain;
  p.bars.forEach(function(i){var c=gd.data[i].colorbar||{},y=(d[0]+d[1])/2,l=0.96*(d[1]-d[0]);
   if(Math.abs((c.y==null?0.5:c.y)-y)>0.005||Math.abs((c.len==null?1:c.len)-l)>0.005){idx.push(i);ys.push(y);
    ls.push(l);}});});
 if(idx.length)Plotly.restyle(gd,{'colorbar.y':ys,'colorbar.len':ls,'colorbar.yanchor':idx.map(function(){
  return 'middle';}),'colorbar.lenmode':idx.map(function(){return 'fraction';})},idx);}
gd.on&&gd.on('plotly_afterplot',function(){setTimeout(function(){fitBoxes();fitBars();},0);});
var timer=null,last=null,later=function(){clearTimeout(timer);timer=setTimeout(apply,100);};apply();fitBoxes();
fitBars();
window.addEventListener('resize',later);
// a frame resized by its page may send no resize event: watch the page's own size too
if(window.ResizeObserver)new ResizeObserver(later).observe(document.documentElement);})();
"""

COLOURED = ("heatmap", "contour", "mesh3d", "surface")


def _domain(v, default=(0.0, 1.0)) -> list[float]:
    """A layout domain as floats; an unset one is the whole figure."""
    return [float(t) for t in v] if v is not None else list(default)


def panels(fig) -> list[dict]:
    """The figure's panels in reading order, column by column (a column's top panel first): each 3D scene and each
    x/y plot with the paper annotations that title it and the traces whose colour bars belong to it."""
    lay = fig.layout
    names = list(lay.to_plotly_json())
    out = []
    for k in names:
        if re.fullmatch(r"scene\d*", k):
            d = lay[k].domain
            out.append(dict(scene=k, rect=_domain(d.x) + _domain(d.y), ratio=0.95, xy=False))
        elif re.fullmatch(r"xaxis\d*", k):
            ax = lay[k]
            yk = "yaxis" + (ax.anchor or "y")[1:]
            ya = lay[yk] if yk in names else None
            square = ya is not None and ya.scaleanchor is not None
            out.append(dict(x=k, y=yk, rect=_domain(ax.domain) + _domain(ya.domain if ya is not None else None),
                            ratio=0.9 if square else 0.8, xy=True))
    out.sort(key=lambda p: (round(p["rect"][0], 2), -p["rect"][3]))
    for p in out:
        p["titles"], p["bars"], p["spare"] = [], [], []
    for i, a in enumerate(lay.annotations or []):
        if a.xref != "paper" or a.yref != "paper" or a.x is None or a.y is None:
            continue
        near = [p for p in out if p["rect"][0] - 0.02 <= a.x <= p["rect"][1] + 0.02 and a.y >= p["rect"][3] - 0.05]
        if near:
            min(near, key=lambda p: a.y - p["rect"][3])["titles"].append(i)
    for i, t in enumerate(fig.data):
        if t.type not in COLOURED:
            continue
        # a hidden bar with a title is a spare: shown when the panels stack (its panel then stands alone)
        spare = t.showscale is False and t.colorbar.title.text is not None
        if t.showscale is False and not spare:
            continue
        where = (t.scene or "scene") if t.type == "mesh3d" or t.type == "surface" else \
            "xaxis" + (t.xaxis or "x")[1:]
        for p in out:
            if p.get("scene", p.get("x")) == where:
                p["spare" if spare else "bars"].append(i)
    return out


def _axes(lay, kind: str) -> list:
    """The layout's axes of one kind (``xaxis``, ``yaxis``)."""
    return [lay[k] for k in lay.to_plotly_json() if re.fullmatch(kind + r"\d*", k)]


def stack_script(fig, columns: int, tall: bool = False) -> str:
    """The script that stacks the figure's panels on a narrow window, and with ``tall`` gives them their columns'
    full width on a wide one (see the module's docstring)."""
    lay = fig.layout
    # legend rows: lines and markers (a colour-mapped trace has a colour bar, not a legend entry)
    entries = sum(1 for t in fig.data if t.type not in COLOURED and t.type != "scatter3d" and
                  (t.showlegend is True or (t.showlegend is None and len(fig.data) > 1)))
    legend = entries if lay.showlegend is not False else 0
    slider = bool(lay.sliders)
    found = panels(fig)
    # the wide layout's domains as written: a square plot's domain in the drawn layout is already shrunk to fit
    wide = {}
    for p in found:
        if p.get("scene"):
            wide[p["scene"] + ".domain"] = dict(x=p["rect"][:2], y=p["rect"][2:])
        else:
            wide[p["x"] + ".domain"], wide[p["y"] + ".domain"] = p["rect"][:2], p["rect"][2:]
    m = lay.margin
    # the square maps set the height (a 3D view takes the rest of its column: seen from 30 degrees, its box is
    # wider than high); a figure without them, its panels at their stacking ratios
    sized = [p["rect"] + [1.0] for p in found if p["xy"] and p["ratio"] == 0.9] or \
        [p["rect"] + [p["ratio"]] for p in found]
    full = dict(rects=sized, l=int(m.l or 80), r=int(m.r or 80), t=int(m.t or 100), b=int(m.b or 80)) \
        if tall else None
    spec = dict(panels=[{k: v for k, v in p.items() if k != "rect"} for p in found], wide=wide, tall=full,
                breakpoint=max(600, 430 * columns), xy=any(p["xy"] for p in found),
                right=52 if any(a.overlaying for a in _axes(lay, "yaxis")) else 12, legend=legend,
                # a slider keeps the bottom margin that holds it
                margin_b=int(lay.margin.b or 90) + 30 if slider else 8,
                # buttons above the plot keep the top margin that holds them below the toolbar
                top=int(lay.margin.t or 0) if any((m.y or 0) >= 1 for m in lay.updatemenus or []) else 0)
    return STACK % json.dumps(spec)


def write_page(fig, title: str, settings: str, path: str, columns: int, script: str = "", tall: bool = False,
               **to_html) -> str:
    """Write a self-contained page; ``columns`` is how many panels the wide layout puts side by side (it sets the
    width below which the panels stack); ``tall``: full-size panels on a wide window, the page scrolling down
    (see the module's docstring). The figure's size comes from CSS and the window, not a fixed height."""
    fig.update_layout(autosize=True, height=None, width=None, paper_bgcolor="white", plot_bgcolor="white")
    body = fig.to_html(full_html=False, include_plotlyjs=True, div_id="landscape-figure", default_width="100%",
                       default_height="100%", config={"displaylogo": False, "responsive": True}, **to_html)
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(PAGE.format(title=html.escape(title), settings=settings, figure=body,
                            script=stack_script(fig, columns, tall) + script))
    return path
