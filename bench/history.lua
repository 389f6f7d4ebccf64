-- wrk script of bench/history.py: each connection reads the page, then waits 0.5-1.5 s (random,
-- uniform) before its next read, its first read included, so 1,000 connections offer about
-- 1,000 requests/s spread in time, not in bursts. With the argument `conditional` each connection
-- sends back the ETag it last got (If-None-Match), as a browser or a polling client does.
-- done() prints one line `wrk-json {...}` that history.py reads.
--
--   wrk -t2 -c1000 -d15s --timeout 10s -s bench/history.lua URL [-- conditional]

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local conditional = false
local etag = nil
local base = nil
statuses = {}

function init(args)
  conditional = args[1] == "conditional"
  math.randomseed(os.time() * 1000 + id)
  base = wrk.format("GET", wrk.path)
end

function delay()
  return math.random(500, 1500)
end

function request()
  if conditional and etag then
    return wrk.format("GET", wrk.path, { ["If-None-Match"] = etag })
  end
  return base
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local tag = headers["ETag"] or headers["etag"]
  if conditional and tag then
    etag = tag
  end
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'wrk-json {"requests": %d, "seconds": %.3f, "p50": %.3f, "p90": %.3f, "p99": %.3f, ' ..
    '"max": %.3f, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"statuses": {%s}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ", ")))
end
