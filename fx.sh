fixed_p99() {
  $LOAD python3 - "$1" "${RATE:-2000}" "$SECS" <<'PY'
import asyncio,sys,time
port,rate,secs=int(sys.argv[1]),int(sys.argv[2]),float(sys.argv[3]); conns=20
lat=[]
async def worker(i):
    r,w=await asyncio.open_connection("127.0.0.1",port)
    per=conns/rate; start=time.perf_counter()+i*(1/rate); k=0
    while True:
        due=start+k*per
        if due-start>secs: break
        d=due-time.perf_counter()
        if d>0: await asyncio.sleep(d)
        w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head=await r.readuntil(b"\r\n\r\n")
        n=int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
        await r.readexactly(n)
        lat.append(time.perf_counter()-due); k+=1
    w.close()
async def main(): await asyncio.gather(*(worker(i) for i in range(conns)))
asyncio.run(main())
lat.sort(); print("%.2f" % (lat[int(len(lat)*0.99)]*1000))
PY
}
