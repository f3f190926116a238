-- insert: creates a session unless a live one has this key.
-- KEYS[1]: the session's hash.
-- ARGV: now (ms), expires (ms), evict_at (ms, the key's PEXPIREAT), bytes
-- (the session's field bytes, see mod.rs), then field/value pairs.
-- Returns 1 when created, 0 when a live session holds the key.
local key = KEYS[1]
local expires = redis.call('HGET', key, 'expires')
if expires and tonumber(expires) > tonumber(ARGV[1]) then
    return 0
end
redis.call('DEL', key)
redis.call('HSET', key, 'gen', '1', 'created', ARGV[1], 'expires', ARGV[2], 'bytes', ARGV[4])
-- In chunks: unpack() takes a few thousand values at most.
local chunk = {}
for i = 5, #ARGV do
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
return 1
