-- save: replaces a session's data and expiry, creating it when absent.
-- KEYS[1]: the session's hash.
-- ARGV: now (ms), expires (ms), evict_at (ms), bytes, the expected
-- generation ('' for none), then field/value pairs.
-- Returns the new generation; -1 when a generation is expected and there is
-- no live session; -2 when the live session is at another generation.
local key = KEYS[1]
local expected = ARGV[5]
local meta = redis.call('HMGET', key, 'expires', 'gen', 'created')
local gen, created = '0', ARGV[1]
if meta[1] and tonumber(meta[1]) > tonumber(ARGV[1]) then
    if expected ~= '' and meta[2] ~= expected then
        return -2
    end
    gen, created = meta[2], meta[3]
elseif expected ~= '' then
    return -1
end
redis.call('DEL', key)
redis.call('HSET', key, 'gen', gen, 'created', created, 'expires', ARGV[2], 'bytes', ARGV[4])
local chunk = {}
for i = 6, #ARGV do
    chunk[#chunk + 1] = ARGV[i]
    if #chunk == 1000 then
        redis.call('HSET', key, unpack(chunk))
        chunk = {}
    end
end
if #chunk > 0 then
    redis.call('HSET', key, unpack(chunk))
end
redis.call('PEXPIREAT', key, ARGV[3])
return redis.call('HINCRBY', key, 'gen', 1)
