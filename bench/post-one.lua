-- wrk script: one event per request, authenticated with $SLUICE_KEY.
wrk.method = "POST"
wrk.body = '{"type":"bench.event","data":{"n":1,"user":"u-123","tags":["a","b"],"amount":12.5}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SLUICE_KEY")
