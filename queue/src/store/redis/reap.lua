-- ARGV: P, now. Returns a flat list of {kind, id} pairs (requeued | dead | cancelled).
local now = tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', P .. ':leases', '-inf', '(' .. now, 'LIMIT', 0, 1000)
local out = {}
for _, id in ipairs(ids) do
  local k = jkey(id)
  local st = redis.call('HGET', k, 'status')
  if st ~= 'running' then
    redis.call('ZREM', P .. ':leases', id)
  else
    local user = redis.call('HGET', k, 'user_id')
    local seq = tonumber(redis.call('HGET', k, 'seq'))
    local prio = tonumber(redis.call('HGET', k, 'priority'))
    local attempts = tonumber(redis.call('HGET', k, 'attempts'))
    local max_attempts = tonumber(redis.call('HGET', k, 'max_attempts'))
    local worker = redis.call('HGET', k, 'worker_id') or ''
    local msg = 'lease expired: worker ' .. worker .. ' stopped heartbeating'
    end_attempt(id, now, 'lease_expired', msg)
    stop_lease(id)
    if redis.call('HGET', k, 'cancel_requested') == '1' then
      move_status(id, user, seq, 'running', 'cancelled')
      redis.call('HSET', k, 'completed_at', now)
      out[#out + 1] = 'cancelled'
    elseif attempts < max_attempts then
      move_status(id, user, seq, 'running', 'pending')
      enter_ready(id, user, prio, seq)
      redis.call('HSET', k, 'error', msg)
      out[#out + 1] = 'requeued'
    else
      move_status(id, user, seq, 'running', 'failed')
      redis.call('HSET', k, 'completed_at', now, 'error',
        msg .. '; gave up after ' .. attempts .. ' attempts')
      out[#out + 1] = 'dead'
    end
    out[#out + 1] = id
  end
end
return out
