/* Leadflow tracking: <script async src="https://INGEST/t.js" data-key="WRITE_KEY"></script> */
(function(w,d,n,L){
var me=d.currentScript||d.querySelector('script[data-key]'),q0=w.leadflow;
if(!me||(q0&&q0.track))return;
var key=me.getAttribute('data-key'),url=me.src.replace(/\/t\.js([?#].*)?$/,'')+'/v1/collect',now=Date.now();
function load(k){try{return localStorage.getItem(k)}catch(e){return null}}
function save(k,v){try{localStorage.setItem(k,v)}catch(e){}}
function cookie(k){var m=d.cookie.match('(?:^|; )'+k+'=([^;]*)');return m&&m[1]}
// widest domain allowed: subdomains share it
function setCookie(k,v){
var h=L.hostname.split('.'),i=h.length-2,
c=k+'='+v+';path=/;max-age=63072000;samesite=lax'+(L.protocol=='https:'?';secure':'');
for(;i>=0;i--){d.cookie=c+';domain='+h.slice(i).join('.');if(cookie(k)==v)return}
d.cookie=c;
}
function uid(){return w.crypto&&crypto.randomUUID?crypto.randomUUID():'r'+Math.random().toString(36).slice(2)+now}
function queue(){try{return JSON.parse(load('lf_q'))||[]}catch(e){return[]}}
function keep(b){var q=queue();q.push(b);save('lf_q',JSON.stringify(q.slice(-20)))}

var aid=cookie('lf_aid')||load('lf_aid');
if(!/^[\w.:-]{8,128}$/.test(aid))aid=uid();
save('lf_aid',aid);setCookie('lf_aid',aid);

// a visit ends after 30 idle minutes
var visit=+load('lf_visit')||0,utm={},t=0;
new URLSearchParams(L.search).forEach(function(v,k){if(/^utm_/.test(k)){utm[k]=v;t=1}});
if(now-(+load('lf_last')||0)>18e5)visit++;
else if(!t)try{utm=JSON.parse(load('lf_utm'))||{}}catch(e){}
save('lf_visit',visit);save('lf_utm',JSON.stringify(utm));

// 5xx, 429, offline: sent again from the next page
function post(b,bc){
if((bc||!w.fetch)&&n.sendBeacon&&n.sendBeacon(url,b))return;
w.fetch&&fetch(url,{method:'POST',body:b,keepalive:true,credentials:'omit'})
.then(function(r){if(r.status>499||r.status==429)keep(b)},function(){keep(b)});
}
var page,shown,spent,told;
function send(type,x,bc){
var m={writeKey:key,type:type,anonymousId:aid,messageId:uid(),pageViewId:page,url:L.href,
title:d.title,referrer:d.referrer,visit:visit,utm:utm},k;
for(k in x)m[k]=x[k];
save('lf_last',Date.now());
post(JSON.stringify(m),bc);
}
function view(){page=uid();spent=told=0;shown=d.hidden?0:Date.now();send('page')}
// time on page: time visible
function hide(){
if(shown){spent+=Date.now()-shown;shown=0}
if(spent-told>=1e3){told=spent;send('leave',{durationS:Math.round(spent/100)/10},1)}
}
d.addEventListener('visibilitychange',function(){d.hidden?hide():shown=Date.now()});
w.addEventListener('pagehide',hide);
w.addEventListener('pageshow',function(e){e.persisted&&view()});

var api=w.leadflow={
identify:function(email,traits){send('identify',{email:email,traits:traits||{}})},
track:function(name,props){send('track',{event:name,properties:props||{}})},
anonymousId:function(){return aid}
};
var old=queue();save('lf_q','[]');
view();
old.forEach(function(b){post(b)});
q0&&q0.forEach&&q0.forEach(function(c){api[c[0]]&&api[c[0]].apply(api,c.slice(1))});
})(window,document,navigator,location);
