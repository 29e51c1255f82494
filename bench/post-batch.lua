-- wrk script: 100 events per request, authenticated with $SLUICE_KEY.
local events = {}
for i = 1, 100 do
  events[i] = string.format('{"type":"bench.event","data":{"n":%d,"user":"u-123","tags":["a","b"],"amount":12.5}}', i)
end
wrk.method = "POST"
wrk.body = "[" .. table.concat(events, ",") .. "]"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("SLUICE_KEY") or "none")
