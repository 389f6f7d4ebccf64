-- The fake engine: one fixed OpenAI chat completion, as JSON or as an SSE stream.
--
-- OpenAI clients (chatgate, LiteLLM, the SDK) use the same URL for both and say which they want
-- with the body's "stream" flag, so the body is read and that flag decides; nginx alone cannot
-- branch on a body. Reading ~300 bytes and one string match costs microseconds, paid equally by
-- the direct calls and by every gateway in front.
--
-- The stream sends its role chunk and first content chunk at once, then the rest after
-- $stream_gap seconds (nginx.conf), so "time to first token" is measurable apart from the whole
-- stream, and a gateway that buffers the stream shows up as a first token delayed by the gap.

local CREATED = 1700000000
local MODEL = "gpt-4o-mini"
local ID = "chatcmpl-bench0000000000000000000000"
local WORDS = { "Hello", "!", " This", " is", " a", " fixed", " answer", " from", " the",
                " benchmark", " upstream", "." }

local function chunk(delta, finish)
    local finish_json = finish and ('"' .. finish .. '"') or "null"
    return 'data: {"id":"' .. ID .. '","object":"chat.completion.chunk","created":' .. CREATED
        .. ',"model":"' .. MODEL .. '","system_fingerprint":null,"choices":[{"index":0,"delta":'
        .. delta .. ',"logprobs":null,"finish_reason":' .. finish_json .. '}]}\n\n'
end

local function content(text)
    return '{"content":"' .. text .. '"}'
end

local COMPLETION = '{"id":"' .. ID .. '","object":"chat.completion","created":' .. CREATED
    .. ',"model":"' .. MODEL .. '","system_fingerprint":null,"choices":[{"index":0,'
    .. '"message":{"role":"assistant","content":"' .. table.concat(WORDS) .. '","refusal":null},'
    .. '"logprobs":null,"finish_reason":"stop"}],'
    .. '"usage":{"prompt_tokens":25,"completion_tokens":12,"total_tokens":37}}'

local HEAD = chunk('{"role":"assistant","content":""}') .. chunk(content(WORDS[1]))
local rest = {}
for i = 2, #WORDS do
    rest[#rest + 1] = chunk(content(WORDS[i]))
end
rest[#rest + 1] = chunk("{}", "stop")
rest[#rest + 1] = 'data: {"id":"' .. ID .. '","object":"chat.completion.chunk","created":'
    .. CREATED .. ',"model":"' .. MODEL .. '","system_fingerprint":null,"choices":[],'
    .. '"usage":{"prompt_tokens":25,"completion_tokens":12,"total_tokens":37}}\n\n'
rest[#rest + 1] = "data: [DONE]\n\n"
local TAIL = table.concat(rest)

local M = {}

-- Built once per nginx worker (a module), run per request.
function M.handle()
    ngx.req.read_body()
    local body = ngx.req.get_body_data() or ""
    if body:find('"stream"%s*:%s*true') then
        local gap = tonumber(ngx.var.stream_gap) or 0.02
        ngx.header["Content-Type"] = "text/event-stream"
        ngx.header["Cache-Control"] = "no-cache"
        ngx.print(HEAD)
        ngx.flush(true)
        if gap > 0 then
            ngx.sleep(gap)
        end
        ngx.print(TAIL)
    else
        ngx.header["Content-Type"] = "application/json"
        ngx.print(COMPLETION)
    end
end

return M
