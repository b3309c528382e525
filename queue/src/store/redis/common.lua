-- Helpers shared by every script (prepended to each one when it is loaded).
-- ARGV[1] is always the key prefix P. Keys (all derived from P; single-instance Redis),
-- layout 2 (`P:layout`; `migrate.lua` brings a layout-1 Redis to it at start):
--   P:job:<id>             HASH  the job: seq, user_id, status, priority, created_at,
--                                 max_attempts, and when set: attempts (absent: 0),
--                                 cancel_requested (absent: 0), metadata (absent: {}),
--                                 history (absent: []), req_class (absent: ''), idem_key,
--                                 workflow (only when at most INLINE bytes), started_at,
--                                 worker_id, lease_token, lease_until, lease_fenced ('1' when
--                                 complete/fail need the lease token), completed_at, result,
--                                 error, not_before (while a retried job waits out its
--                                 backoff). No `id` field: the id is in the key. Small values
--                                 keep the hash in Redis' compact listpack encoding (values
--                                 up to hash-max-listpack-value, 64 bytes by default).
--   P:wf:<id>              STRING the workflow when longer than INLINE bytes
--   P:seq, P:serve_seq     STRING counters (submission order, claim order)
--   P:pending              ZSET  id -> priority * 2^40 + seq     (queue position; also the
--                                 pending status index: counts, lists)
--   P:ready:<prio>:<user>  ZSET  id -> seq                       (FIFO within a user)
--   P:users:<prio>         ZSET  user -> last_served             (round robin inside a priority)
--   P:served               HASH  user -> last_served
--   P:leases               ZSET  id -> lease_until ms            (reaper scans the head)
--   P:status:<status>      ZSET  id -> seq  for running, completed, failed, cancelled (lists,
--                                 counts; pending jobs are in P:pending)
--   P:user:<user>          ZSET  id -> seq                       (lists; a list of all jobs
--                                 merges P:pending and the P:status:<status> sets)
--   P:upending, P:urunning HASH  user -> count
--   P:idem                 HASH  user NUL key -> id
--   P:layout               STRING 2 (layout 1 had an `id` field in each job, every
--                                 workflow inline, and P:status:pending and P:all ZSETs)
--   P:worker:<id> HASH (worker_id, comfyui_version, line, capabilities, catalogue: the
--                  SHA-256 of its node catalogue blob, registered_at, last_seen), P:workers SET
--   P:files:<id>           HASH  role NUL subfolder NUL filename -> the file's JSON (FileRecord)
--   P:fileseq              STRING counter (file positions: inputs first, then upload order)
--   P:fjobs                SET   ids of jobs that have files (the file sweep walks it)
--   P:upload:<user>        HASH  sha256 -> the upload's JSON (Upload; uploaded_at is the score below)
--   P:uploads              ZSET  user NUL sha256 -> last upload or use (ms)
--   P:blobrefs             HASH  sha256 -> how many files and uploads refer to the blob
-- Every redis.call costs a few microseconds inside Lua, so each script reads the job once
-- (HMGET), decides in Lua, and writes it back with one HSET.
local P = ARGV[1]
local FIELDS = {'id', 'seq', 'user_id', 'status', 'priority', 'created_at', 'started_at',
  'completed_at', 'worker_id', 'metadata', 'result', 'error', 'attempts', 'max_attempts',
  'cancel_requested', 'lease_token', 'lease_until', 'history', 'not_before'}
-- What load() reads: FIELDS without `id` (the key has it; layout 1 also stored it).
local STORED = {'seq', 'user_id', 'status', 'priority', 'created_at', 'started_at',
  'completed_at', 'worker_id', 'metadata', 'result', 'error', 'attempts', 'max_attempts',
  'cancel_requested', 'lease_token', 'lease_until', 'history', 'not_before'}
local PRIO_SHIFT = 1099511627776 -- 2^40
-- Longest workflow kept in the job hash; a longer one is the string P:wf:<id>, so the hash
-- keeps its listpack encoding (Redis' default hash-max-listpack-value is 64).
local INLINE = 64

local function jkey(id) return P .. ':job:' .. id end
local function wfkey(id) return P .. ':wf:' .. id end

-- The job as a table of strings (false for absent fields, defaults filled in), or nil.
local function load(id, extra)
  local names = STORED
  if extra then
    names = {unpack(STORED)}
    for _, f in ipairs(extra) do names[#names + 1] = f end
  end
  local v = redis.call('HMGET', jkey(id), unpack(names))
  if not v[1] then return nil end
  local j = {id = id}
  for i, f in ipairs(names) do j[f] = v[i] end
  if not j.attempts then j.attempts = '0' end
  if not j.cancel_requested then j.cancel_requested = '0' end
  return j
end

-- The job's workflow text (inline, or the P:wf:<id> string), false when missing.
local function workflow(j)
  if j.workflow then return j.workflow end
  return redis.call('GET', wfkey(j.id))
end

-- The job's FIELDS after `first` (a reply code) in `out`.
local function fields_into(out, j)
  for _, f in ipairs(FIELDS) do
    local x = j[f]
    if x == nil then x = false end
    out[#out + 1] = x
  end
  return out
end

local function reply(code, j) return fields_into({code}, j) end

local function fail_reply(code, msg) return {code, msg} end

-- 1-based place among pending jobs by (priority, seq).
local function position(prio, seq)
  return redis.call('ZCOUNT', P .. ':pending', '-inf', prio * PRIO_SHIFT + seq)
end

-- A user's count stays in the hash at 0 (readers skip zeros): one call per change.
local function count_user(status, user, delta)
  if status ~= 'pending' and status ~= 'running' then return end
  local h = P .. ':u' .. status
  local n = redis.call('HINCRBY', h, user, delta)
  if n < 0 then redis.call('HDEL', h, user) end
end

-- Index moves of a status change (the caller writes the `status` field itself). Pending
-- jobs are indexed by P:pending alone (enter_ready / leave_ready).
local function move_status(id, user, seq, from, to)
  if from then
    if from ~= 'pending' then redis.call('ZREM', P .. ':status:' .. from, id) end
    count_user(from, user, -1)
  end
  if to ~= 'pending' then redis.call('ZADD', P .. ':status:' .. to, seq, id) end
  count_user(to, user, 1)
end

local function enter_ready(id, user, prio, seq)
  redis.call('ZADD', P .. ':pending', prio * PRIO_SHIFT + seq, id)
  redis.call('ZADD', P .. ':ready:' .. prio .. ':' .. user, seq, id)
  local served = tonumber(redis.call('HGET', P .. ':served', user) or '0')
  redis.call('ZADD', P .. ':users:' .. prio, 'NX', served, user)
end

-- `others`: the caller saw other jobs in the user's ready set (no need to look again).
local function leave_ready(id, user, prio, others)
  redis.call('ZREM', P .. ':pending', id)
  local rk = P .. ':ready:' .. prio .. ':' .. user
  redis.call('ZREM', rk, id)
  if not others and redis.call('EXISTS', rk) == 0 then
    redis.call('ZREM', P .. ':users:' .. prio, user)
  end
end

local function decode_history(j)
  if not j.history or j.history == '' or j.history == '[]' then return {} end
  return cjson.decode(j.history)
end

local function encode_history(h)
  if #h == 0 then return '[]' end
  return cjson.encode(h)
end

-- Close the running attempt in j.history.
local function end_attempt(j, now, outcome, err)
  local h = decode_history(j)
  local last = h[#h]
  if last and last.outcome == 'running' then
    last.ended_at = now
    last.outcome = outcome
    if err then last.error = err else last.error = cjson.null end
    j.history = encode_history(h)
  end
end

-- Token arguments are '' for "no token" (old workers) or 't:' .. token, so an empty token
-- can never pass for "no token".
local function parse_token(arg)
  if arg == '' then return nil end
  return string.sub(arg, 3)
end

-- nil when the caller holds the live lease (token nil: only running and unexpired under a
-- legacy lease, j.lease_fenced ~= '1'; load the job with the extra field), else an error reply.
local function fence(j, token, now)
  if not j then return fail_reply('NOT_FOUND', 'job not found') end
  if j.status ~= 'running' then
    return fail_reply('CONFLICT', 'job is ' .. j.status .. ', not running')
  end
  if token ~= nil and j.lease_token ~= token then
    return fail_reply('CONFLICT', 'lease token does not match: the job was leased again')
  end
  if token == nil and j.lease_fenced == '1' then
    return fail_reply('CONFLICT',
      'the job is leased to a registered worker: report with its lease token')
  end
  if tonumber(j.lease_until or '0') < now then return fail_reply('CONFLICT', 'lease expired') end
  return nil
end

-- A repeat of a fenced call that already took effect.
local function is_replay(j, token, outcomes)
  if not j or token == nil or j.status == 'running' or j.lease_token ~= token then
    return false
  end
  local h = decode_history(j)
  local last = h[#h]
  if not last then return false end
  for _, want in ipairs(outcomes) do
    if last.outcome == want then return true end
  end
  return false
end

local function stop_lease(id, j)
  redis.call('ZREM', P .. ':leases', id)
  redis.call('HDEL', jkey(id), 'lease_until')
  j.lease_until = false
end

local function touch_worker(worker, now)
  local wk = P .. ':worker:' .. worker
  if redis.call('HSET', wk, 'worker_id', worker, 'last_seen', now) > 0 then
    redis.call('HSETNX', wk, 'registered_at', now)
    redis.call('HSETNX', wk, 'capabilities', '[]')
    redis.call('SADD', P .. ':workers', worker)
  end
end

-- One more (delta 1) or one less (-1) file or upload refers to blob `sha`.
local function ref_blob(sha, delta)
  local n = redis.call('HINCRBY', P .. ':blobrefs', sha, delta)
  if n <= 0 then redis.call('HDEL', P .. ':blobrefs', sha) end
end

local function file_field(role, subfolder, filename)
  return role .. '\0' .. subfolder .. '\0' .. filename
end
