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
--
-- A body with "tools" gets a tool call instead, in OpenAI's shapes: one `tool_calls` item and
-- finish_reason "tool_calls"; streamed, the call's first delta (index, id, type, the function's
-- name, arguments "") and its first arguments fragment at once, the other fragments after the
-- gap, then the finish, the usage and [DONE]. The match is on the key `"tools":`, which no
-- plain body holds (a tool conversation's "tool_calls" and "tool" role do not match it).

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

-- The tool call: OpenAI streams its arguments in fragments of a token or so.
local CALL_ID = "call_bench00000000000000000000"
local CALL_NAME = "get_weather"
local FRAGMENTS = { '{\\"', 'location', '\\":\\"', 'Paris', ',', ' France', '\\",\\"',
                    'unit', '\\":\\"', 'c', 'elsius', '\\"}' }
local ARGUMENTS = table.concat(FRAGMENTS)  -- {"location":"Paris, France","unit":"celsius"}
local TOOL_USAGE = '"usage":{"prompt_tokens":142,"completion_tokens":18,"total_tokens":160}'

local TOOL_COMPLETION = '{"id":"' .. ID .. '","object":"chat.completion","created":' .. CREATED
    .. ',"model":"' .. MODEL .. '","system_fingerprint":null,"choices":[{"index":0,'
    .. '"message":{"role":"assistant","content":null,"tool_calls":[{"id":"' .. CALL_ID
    .. '","type":"function","function":{"name":"' .. CALL_NAME .. '","arguments":"' .. ARGUMENTS
    .. '"}}],"refusal":null},"logprobs":null,"finish_reason":"tool_calls"}],' .. TOOL_USAGE .. '}'

local function fragment(text)
    return '{"tool_calls":[{"index":0,"function":{"arguments":"' .. text .. '"}}]}'
end

local TOOL_HEAD = chunk('{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"'
        .. CALL_ID .. '","type":"function","function":{"name":"' .. CALL_NAME
        .. '","arguments":""}}],"refusal":null}')
    .. chunk(fragment(FRAGMENTS[1]))
local tool_rest = {}
for i = 2, #FRAGMENTS do
    tool_rest[#tool_rest + 1] = chunk(fragment(FRAGMENTS[i]))
end
tool_rest[#tool_rest + 1] = chunk("{}", "tool_calls")
tool_rest[#tool_rest + 1] = 'data: {"id":"' .. ID .. '","object":"chat.completion.chunk",'
    .. '"created":' .. CREATED .. ',"model":"' .. MODEL .. '","system_fingerprint":null,'
    .. '"choices":[],' .. TOOL_USAGE .. '}\n\n'
tool_rest[#tool_rest + 1] = "data: [DONE]\n\n"
local TOOL_TAIL = table.concat(tool_rest)

local M = {}

-- Built once per nginx worker (a module), run per request.
function M.handle()
    ngx.req.read_body()
    local body = ngx.req.get_body_data() or ""
    local tools = body:find('"tools"%s*:') ~= nil
    if body:find('"stream"%s*:%s*true') then
        local gap = tonumber(ngx.var.stream_gap) or 0.02
        ngx.header["Content-Type"] = "text/event-stream"
        ngx.header["Cache-Control"] = "no-cache"
        ngx.print(tools and TOOL_HEAD or HEAD)
        ngx.flush(true)
        if gap > 0 then
            ngx.sleep(gap)
        end
        ngx.print(tools and TOOL_TAIL or TAIL)
    else
        ngx.header["Content-Type"] = "application/json"
        ngx.print(tools and TOOL_COMPLETION or COMPLETION)
    end
end

return M
