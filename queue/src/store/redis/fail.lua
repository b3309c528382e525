-- ARGV: P, id, token ('' = none), now, error, retry (0/1), cancelled (0/1)
local id, token, now, msg = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local retry, cancelled = ARGV[6] == '1', ARGV[7] == '1'
if is_replay(id, token, {'failed', 'cancelled'}) then return reply('OK', id) end
local err = fence(id, token, now)
if err then return err end
local k = jkey(id)
local user = redis.call('HGET', k, 'user_id')
local seq = tonumber(redis.call('HGET', k, 'seq'))
local prio = tonumber(redis.call('HGET', k, 'priority'))
local attempts = tonumber(redis.call('HGET', k, 'attempts'))
local max_attempts = tonumber(redis.call('HGET', k, 'max_attempts'))
local cancel_requested = redis.call('HGET', k, 'cancel_requested') == '1'
stop_lease(id)
redis.call('HSET', k, 'error', msg)
if cancelled then
  end_attempt(id, now, 'cancelled', msg)
  move_status(id, user, seq, 'running', 'cancelled')
  redis.call('HSET', k, 'completed_at', now)
else
  end_attempt(id, now, 'failed', msg)
  if retry and attempts < max_attempts and not cancel_requested then
    move_status(id, user, seq, 'running', 'pending')
    enter_ready(id, user, prio, seq)
  else
    move_status(id, user, seq, 'running', 'failed')
    redis.call('HSET', k, 'completed_at', now)
  end
end
return reply('OK', id)
