-- Page 10,000 (or as deep as the data allows): the driver computes its cursor.
dofile("bench/common.lua")
local cursor = os.getenv("BENCH_DEEP_CURSOR")
request = function()
  return wrk.format("GET", "/api/v1/users?limit=50&cursor=" .. cursor, headers())
end
