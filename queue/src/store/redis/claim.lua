-- ARGV: P, worker_id, now, lease_ms, token, eligible classes (JSON array),
--       ineligible classes (JSON array), fenced (1: complete/fail need the token, 0: legacy
--       worker). Reply: job fields, then the workflow, then the JSON of each input file.
-- Outputs and temp files of an earlier attempt are dropped: the new attempt starts clean.
-- Order: priority, then the least recently served user, then FIFO. A job whose
-- requirement class the caller has not judged yet is answered {'UNKNOWN', class}; the
-- caller judges it and calls again.
local worker, now, lease_ms, token = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local ok, no = {}, {}
if ARGV[6] ~= '[]' then for _, c in ipairs(cjson.decode(ARGV[6])) do ok[c] = true end end
if ARGV[7] ~= '[]' then for _, c in ipairs(cjson.decode(ARGV[7])) do no[c] = true end end
touch_worker(worker, now)
-- Each user's ready jobs are read BATCH at a time: the first one is usually the pick.
local BATCH = 16
local pick, pick_user, pick_prio, j, others
local listed = {} -- listed[prio][user]: the user has ready jobs at that priority
-- Only the priorities that have pending jobs: P:pending is ordered by priority first.
local prio = -1
while prio < 3 do
  local head = redis.call('ZRANGEBYSCORE', P .. ':pending', string.format('%d',
    (prio + 1) * PRIO_SHIFT), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #head == 0 then break end
  prio = math.floor(tonumber(head[2]) / PRIO_SHIFT)
  local users = redis.call('ZRANGE', P .. ':users:' .. prio, 0, -1)
  local seen = {}
  listed[prio] = seen
  for _, user in ipairs(users) do
    seen[user] = true
    local rk = P .. ':ready:' .. prio .. ':' .. user
    local start = 0
    while true do
      local ids = redis.call('ZRANGE', rk, start, start + BATCH - 1)
      for _, id in ipairs(ids) do
        -- The whole job at once: the first look is usually the pick.
        local c = load(id, {'req_class', 'workflow'})
        if c then
          local class = c.req_class or ''
          if c.not_before and tonumber(c.not_before) > now then
            -- a retry still waiting out its backoff
          elseif class == '' or ok[class] then
            pick, pick_user, pick_prio, j = id, user, prio, c
            others = start > 0 or #ids > 1
            break
          elseif not no[class] then
            return {'UNKNOWN', class}
          end
        end
      end
      if pick or #ids < BATCH then break end
      start = start + BATCH
    end
    if pick then break end
  end
  if pick then break end
end
if not pick then return {'NONE'} end
local k = jkey(pick)
local seq = tonumber(j.seq)
leave_ready(pick, pick_user, pick_prio, others)
move_status(pick, pick_user, seq, 'pending', 'running')
local attempts = tonumber(j.attempts) + 1
local until_ms = now + lease_ms
local h = decode_history(j)
h[#h + 1] = {attempt = attempts, worker_id = worker, started_at = now,
  ended_at = cjson.null, outcome = 'running', error = cjson.null}
j.status, j.attempts, j.started_at, j.worker_id = 'running', tostring(attempts), tostring(now), worker
j.lease_token, j.lease_until, j.history = token, tostring(until_ms), encode_history(h)
redis.call('HSET', k, 'status', 'running', 'attempts', attempts, 'started_at', now,
  'worker_id', worker, 'lease_token', token, 'lease_until', until_ms, 'history', j.history,
  'lease_fenced', ARGV[8])
if j.not_before then
  redis.call('HDEL', k, 'not_before')
  j.not_before = false
end
redis.call('ZADD', P .. ':leases', until_ms, pick)
local served = redis.call('INCR', P .. ':serve_seq')
redis.call('HSET', P .. ':served', pick_user, served)
-- The user's place in every priority it waits in; below pick_prio the lists read above
-- say where that is (a priority not read had no pending jobs).
for p = 0, 3 do
  if p >= pick_prio or (listed[p] and listed[p][pick_user]) then
    redis.call('ZADD', P .. ':users:' .. p, 'XX', served, pick_user)
  end
end
local out = reply('OK', j)
out[#out + 1] = workflow(j)
local fk = P .. ':files:' .. pick
local files = redis.call('HGETALL', fk)
for i = 1, #files, 2 do
  if string.sub(files[i], 1, 6) == 'input\0' then
    out[#out + 1] = files[i + 1]
  else
    ref_blob(cjson.decode(files[i + 1]).sha256, -1)
    redis.call('HDEL', fk, files[i])
  end
end
return out
