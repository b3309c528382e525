-- ARGV: P, id, token, now, lease_ms
local id, token, now, lease_ms = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local err = fence(id, token, now)
if err then return err end
local until_ms = now + lease_ms
redis.call('HSET', jkey(id), 'lease_until', until_ms)
redis.call('ZADD', P .. ':leases', until_ms, id)
local worker = redis.call('HGET', jkey(id), 'worker_id')
if worker then touch_worker(worker, now) end
return {'OK', tostring(until_ms), redis.call('HGET', jkey(id), 'cancel_requested')}
