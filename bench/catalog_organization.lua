dofile("bench/common.lua")
organizations = tonumber(os.getenv("BENCH_ORGANIZATIONS") or "100")
request = function()
  return wrk.format("GET", "/api/v1/bench/organizations/" .. math.random(1, organizations), headers())
end
