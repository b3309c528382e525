-- ARGV: P, id, token ('t:' .. token), now, reason, the class the caller read ('' = any),
--       the class to give the job ('' = leave it as it is)
-- A job given back unrun: pending again at once (cancelled if a cancel was asked for), its
-- attempt not counted. {'RETRY'} when the class changed since the caller read it.
local id, token, now, reason = ARGV[2], parse_token(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local was, class = ARGV[6], ARGV[7]
local j = load(id, {'lease_fenced', 'req_class'})
if is_replay(j, token, {'handed_back'}) then return reply('OK', j) end
local err = fence(j, token, now)
if err then return err end
if class ~= '' and (j.req_class or '') ~= was then return {'RETRY'} end
local k = jkey(id)
local user, seq, prio = j.user_id, tonumber(j.seq), tonumber(j.priority)
stop_lease(id, j)
end_attempt(j, now, 'handed_back', reason)
j.attempts = tostring(math.max(tonumber(j.attempts) - 1, 0))
j.not_before = false
redis.call('HDEL', k, 'not_before')
if j.cancel_requested == '1' then
  move_status(id, user, seq, 'running', 'cancelled')
  j.status, j.completed_at = 'cancelled', tostring(now)
  redis.call('HSET', k, 'status', j.status, 'history', j.history, 'attempts', j.attempts,
    'completed_at', j.completed_at)
else
  move_status(id, user, seq, 'running', 'pending')
  enter_ready(id, user, prio, seq)
  j.status = 'pending'
  redis.call('HSET', k, 'status', j.status, 'history', j.history, 'attempts', j.attempts)
end
if class ~= '' then redis.call('HSET', k, 'req_class', class) end
return reply('OK', j)
