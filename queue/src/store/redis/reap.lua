-- ARGV: P, now. Returns a flat list of {kind, id} pairs (requeued | dead | cancelled).
local now = tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', P .. ':leases', '-inf', '(' .. now, 'LIMIT', 0, 1000)
local out = {}
for _, id in ipairs(ids) do
  local j = load(id)
  if not j or j.status ~= 'running' then
    redis.call('ZREM', P .. ':leases', id)
  else
    local k = jkey(id)
    local user, seq, prio = j.user_id, tonumber(j.seq), tonumber(j.priority)
    local attempts = tonumber(j.attempts)
    local msg = 'lease expired: worker ' .. (j.worker_id or '') .. ' stopped heartbeating'
    end_attempt(j, now, 'lease_expired', msg)
    stop_lease(id, j)
    if j.cancel_requested == '1' then
      move_status(id, user, seq, 'running', 'cancelled')
      redis.call('HSET', k, 'status', 'cancelled', 'completed_at', now, 'history', j.history)
      out[#out + 1] = 'cancelled'
    elseif attempts < tonumber(j.max_attempts) then
      move_status(id, user, seq, 'running', 'pending')
      enter_ready(id, user, prio, seq)
      redis.call('HSET', k, 'status', 'pending', 'error', msg, 'history', j.history)
      out[#out + 1] = 'requeued'
    else
      move_status(id, user, seq, 'running', 'failed')
      redis.call('HSET', k, 'status', 'failed', 'completed_at', now, 'history', j.history,
        'error', msg .. '; gave up after ' .. attempts .. ' attempts')
      out[#out + 1] = 'dead'
    end
    out[#out + 1] = id
  end
end
return out
