-- wrk script: POST a chat-completions body, then print a JSON summary on stdout.
-- BENCH_BODY names the body file; each request replaces its "{n}" with a number of its own, so
-- no two questions are the same (no cache can answer them). BENCH_AUTH, when set, is the whole
-- Authorization header value.

local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
    wrk.headers["Authorization"] = auth
end

local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("thread_id", threads)
end

local counter = 0
function request()
    counter = counter + 1
    local n = tostring(thread_id or 0) .. "-" .. tostring(counter)
    return wrk.format(nil, nil, nil, (wrk.body:gsub("{n}", n)))
end

-- Latencies are in microseconds.
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
            .. '"min_us":%d,"max_us":%d,"mean_us":%.1f,"errors_connect":%d,"errors_read":%d,'
            .. '"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.min, latency.max, latency.mean, e.connect, e.read, e.write, e.status,
        e.timeout))
end
