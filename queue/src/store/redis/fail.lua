-- ARGV: P, id, token ('' = none, else 't:' .. token), now, error, retry (0/1), cancelled (0/1),
--       retry delay base ms (attempt n waits base * 2^(n-1), at most base * 32)
local id, token, now, msg = ARGV[2], parse_token(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local retry, cancelled = ARGV[6] == '1', ARGV[7] == '1'
local j = load(id, {'lease_fenced'})
if is_replay(j, token, {'failed', 'cancelled'}) then return reply('OK', j) end
local err = fence(j, token, now)
if err then return err end
local k = jkey(id)
local user, seq, prio = j.user_id, tonumber(j.seq), tonumber(j.priority)
stop_lease(id, j)
j.error = msg
if cancelled then
  end_attempt(j, now, 'cancelled', msg)
  move_status(id, user, seq, 'running', 'cancelled')
  j.status, j.completed_at = 'cancelled', tostring(now)
else
  end_attempt(j, now, 'failed', msg)
  if retry and tonumber(j.attempts) < tonumber(j.max_attempts) and j.cancel_requested ~= '1' then
    move_status(id, user, seq, 'running', 'pending')
    enter_ready(id, user, prio, seq)
    j.status = 'pending'
    local exp = math.min(tonumber(j.attempts) - 1, 5)
    local delay = tonumber(ARGV[8]) * (2 ^ exp)
    if delay > 0 then
      j.not_before = string.format('%d', now + delay)
      redis.call('HSET', k, 'not_before', j.not_before)
    end
  else
    move_status(id, user, seq, 'running', 'failed')
    j.status, j.completed_at = 'failed', tostring(now)
  end
end
if j.completed_at then
  redis.call('HSET', k, 'status', j.status, 'error', msg, 'history', j.history,
    'completed_at', j.completed_at)
else
  redis.call('HSET', k, 'status', j.status, 'error', msg, 'history', j.history)
end
return reply('OK', j)
