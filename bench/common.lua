-- Shared by every scenario: the optional bearer token, seeded usernames, and a done() that
-- prints the numbers as one JSON line for bench/run.py.
token = os.getenv("BENCH_TOKEN")  -- sent as Authorization: Bearer <token> when set
users = tonumber(os.getenv("BENCH_USERS") or "1000")
first = {"ada", "alan", "anna", "bob", "carla", "chen", "dara", "emil", "fatima", "grace", "hugo",
         "ines", "jon", "kemal", "lena", "mario", "nadia", "olga", "pedro", "quinn", "rosa",
         "sami", "tara", "uma", "victor", "wen", "xavier", "yara", "zoe"}
last = {"adams", "brown", "costa", "dubois", "evans", "fischer", "garcia", "hansen", "ivanov",
        "jensen", "kim", "lopez", "martin", "nguyen", "okafor", "petrov", "rossi", "silva",
        "tanaka", "weber"}

function headers(extra)
  local h = {}
  if token and token ~= "" then h["Authorization"] = "Bearer " .. token end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

-- The username `dataservice seed` gives its i-th user (0-based), as in dataservice/seed.py.
function seeded_username(i)
  return first[(i % #first) + 1] .. "_" .. last[(math.floor(i / #first) % #last) + 1] .. i
end

-- A random tag from the kernel: wrk's threads start in the same instant, so time-based seeds
-- would give two threads (or a warm-up and the run after it) the same usernames.
function random_tag(letter)
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(5)
  f:close()
  return letter .. (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end
-- Each thread its own random sequence of ids (LuaJIT starts every thread on the same one).
math.randomseed(tonumber(random_tag(""):sub(1, 8), 16))

-- Status counting makes wrk read every response: only in the warm-up, which decides whether
-- the endpoint exists on this service (404/405 everywhere: "not available").
threads = {}
function setup(thread)
  table.insert(threads, thread)
end
if os.getenv("BENCH_COUNT_STATUSES") then
  statuses = {}
  function response(status, hdrs, body)
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      table.insert(counts, string.format("[%d, %d]", status, n))
    end
  end
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, ' ..
    '"errors": %d, "non2xx": %d, "statuses": [%s]}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, table.concat(counts, ", ")))
end
