-- Shared by every scenario: the bearer token, and a done() that prints the numbers as JSON.
token = os.getenv("BENCH_TOKEN")
users = tonumber(os.getenv("BENCH_USERS") or "1000")
first = {"ada", "alan", "anna", "bob", "carla", "chen", "dara", "emil", "fatima", "grace", "hugo",
         "ines", "jon", "kemal", "lena", "mario", "nadia", "olga", "pedro", "quinn", "rosa",
         "sami", "tara", "uma", "victor", "wen", "xavier", "yara", "zoe"}
last = {"adams", "brown", "costa", "dubois", "evans", "fischer", "garcia", "hansen", "ivanov",
        "jensen", "kim", "lopez", "martin", "nguyen", "okafor", "petrov", "rossi", "silva",
        "tanaka", "weber"}

function headers(extra)
  local h = {["Authorization"] = "Bearer " .. token}
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

-- The username `dataservice seed` gives its i-th user (0-based), as in dataservice/seed.py.
function seeded_username(i)
  return first[(i % #first) + 1] .. "_" .. last[(math.floor(i / #first) % #last) + 1] .. i
end

statuses = {}
function response(status, hdrs, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, ' ..
    '"errors": %d, "non2xx": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
