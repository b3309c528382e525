-- ARGV: P, id, 't:' .. token, now, lease_ms
local id, token, now, lease_ms = ARGV[2], parse_token(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local v = redis.call('HMGET', jkey(id), 'seq', 'status', 'lease_token', 'lease_until',
  'worker_id', 'cancel_requested')
local j = nil
if v[1] then
  j = {status = v[2], lease_token = v[3], lease_until = v[4]}
end
local err = fence(j, token, now)
if err then return err end
local until_ms = now + lease_ms
redis.call('HSET', jkey(id), 'lease_until', until_ms)
redis.call('ZADD', P .. ':leases', until_ms, id)
if v[5] then touch_worker(v[5], now) end
return {'OK', tostring(until_ms), v[6]}
