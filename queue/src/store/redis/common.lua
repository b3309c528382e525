-- Helpers shared by every script (prepended to each one when it is loaded).
-- ARGV[1] is always the key prefix P. Keys (all derived from P; single-instance Redis):
--   P:job:<id>            HASH  the job (fields below, plus workflow, req_class, idem_key)
--   P:seq, P:serve_seq    STRING counters (submission order, claim order)
--   P:pending             ZSET  id -> priority * 2^40 + seq     (queue position)
--   P:ready:<prio>:<user> ZSET  id -> seq                       (FIFO within a user)
--   P:users:<prio>        ZSET  user -> last_served             (round robin inside a priority)
--   P:served              HASH  user -> last_served
--   P:leases              ZSET  id -> lease_until ms            (reaper scans the head)
--   P:status:<status>     ZSET  id -> seq                       (lists, counts)
--   P:all, P:user:<user>  ZSET  id -> seq                       (lists)
--   P:upending, P:urunning HASH user -> count
--   P:idem                HASH  user NUL key -> id
--   P:worker:<id> HASH, P:workers SET
local P = ARGV[1]
local FIELDS = {'id', 'seq', 'user_id', 'status', 'priority', 'created_at', 'started_at',
  'completed_at', 'worker_id', 'metadata', 'result', 'error', 'attempts', 'max_attempts',
  'cancel_requested', 'lease_token', 'lease_until', 'history'}
local PRIO_SHIFT = 1099511627776 -- 2^40

local function jkey(id) return P .. ':job:' .. id end

local function view(id)
  return redis.call('HMGET', jkey(id), unpack(FIELDS))
end

local function reply(code, id)
  local out = {code}
  for _, v in ipairs(view(id)) do out[#out + 1] = v end
  return out
end

-- 1-based place among pending jobs by (priority, seq), or false.
local function position(id)
  local score = redis.call('ZSCORE', P .. ':pending', id)
  if not score then return false end
  return redis.call('ZCOUNT', P .. ':pending', '-inf', score)
end

local function fail_reply(code, msg) return {code, msg} end

local function count_user(status, user, delta)
  if status ~= 'pending' and status ~= 'running' then return end
  local h = P .. ':u' .. status
  local n = redis.call('HINCRBY', h, user, delta)
  if n <= 0 then redis.call('HDEL', h, user) end
end

local function move_status(id, user, seq, from, to)
  if from then
    redis.call('ZREM', P .. ':status:' .. from, id)
    count_user(from, user, -1)
  end
  redis.call('ZADD', P .. ':status:' .. to, seq, id)
  count_user(to, user, 1)
  redis.call('HSET', jkey(id), 'status', to)
end

local function enter_ready(id, user, prio, seq)
  redis.call('ZADD', P .. ':pending', prio * PRIO_SHIFT + seq, id)
  redis.call('ZADD', P .. ':ready:' .. prio .. ':' .. user, seq, id)
  local served = tonumber(redis.call('HGET', P .. ':served', user) or '0')
  redis.call('ZADD', P .. ':users:' .. prio, 'NX', served, user)
end

local function leave_ready(id, user, prio)
  redis.call('ZREM', P .. ':pending', id)
  local rk = P .. ':ready:' .. prio .. ':' .. user
  redis.call('ZREM', rk, id)
  if redis.call('ZCARD', rk) == 0 then
    redis.call('ZREM', P .. ':users:' .. prio, user)
  end
end

local function history(id)
  local h = redis.call('HGET', jkey(id), 'history')
  if not h or h == '' then return {} end
  return cjson.decode(h)
end

local function save_history(id, h)
  if #h == 0 then
    redis.call('HSET', jkey(id), 'history', '[]')
  else
    redis.call('HSET', jkey(id), 'history', cjson.encode(h))
  end
end

local function end_attempt(id, now, outcome, err)
  local h = history(id)
  local last = h[#h]
  if last and last.outcome == 'running' then
    last.ended_at = now
    last.outcome = outcome
    if err then last.error = err else last.error = cjson.null end
    save_history(id, h)
  end
end

local function last_outcome(id)
  local h = history(id)
  local last = h[#h]
  if last then return last.outcome end
  return nil
end

-- Returns nil when the caller holds the live lease, else an error reply.
local function fence(id, token, now)
  local k = jkey(id)
  local st = redis.call('HGET', k, 'status')
  if not st then return fail_reply('NOT_FOUND', 'job not found') end
  if st ~= 'running' then
    return fail_reply('CONFLICT', 'job is ' .. st .. ', not running')
  end
  if token ~= '' and redis.call('HGET', k, 'lease_token') ~= token then
    return fail_reply('CONFLICT', 'lease token does not match: the job was leased again')
  end
  local until_ms = tonumber(redis.call('HGET', k, 'lease_until') or '0')
  if until_ms < now then return fail_reply('CONFLICT', 'lease expired') end
  return nil
end

-- A repeat of a fenced call that already took effect.
local function is_replay(id, token, outcomes)
  if token == '' then return false end
  local k = jkey(id)
  local st = redis.call('HGET', k, 'status')
  if not st or st == 'running' then return false end
  if redis.call('HGET', k, 'lease_token') ~= token then return false end
  local o = last_outcome(id)
  for _, want in ipairs(outcomes) do
    if o == want then return true end
  end
  return false
end

local function stop_lease(id)
  redis.call('ZREM', P .. ':leases', id)
  redis.call('HDEL', jkey(id), 'lease_until')
end

local function touch_worker(worker, now)
  local wk = P .. ':worker:' .. worker
  redis.call('HSET', wk, 'worker_id', worker, 'last_seen', now)
  redis.call('HSETNX', wk, 'registered_at', now)
  redis.call('HSETNX', wk, 'capabilities', '[]')
  redis.call('SADD', P .. ':workers', worker)
end
