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
local pick, pick_user, pick_prio
for prio = 0, 3 do
  local users = redis.call('ZRANGE', P .. ':users:' .. prio, 0, -1)
  for _, user in ipairs(users) do
    local ids = redis.call('ZRANGE', P .. ':ready:' .. prio .. ':' .. user, 0, -1)
    for _, id in ipairs(ids) do
      local meta = redis.call('HMGET', jkey(id), 'req_class', 'not_before')
      local class = meta[1] or ''
      if meta[2] and tonumber(meta[2]) > now then
        -- a retry still waiting out its backoff
      elseif class == '' or ok[class] then
        pick, pick_user, pick_prio = id, user, prio
        break
      elseif not no[class] then
        return {'UNKNOWN', class}
      end
    end
    if pick then break end
  end
  if pick then break end
end
if not pick then return {'NONE'} end
local j = load(pick, {'workflow'})
local k = jkey(pick)
local seq = tonumber(j.seq)
leave_ready(pick, pick_user, pick_prio)
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
for p = 0, 3 do
  redis.call('ZADD', P .. ':users:' .. p, 'XX', served, pick_user)
end
local out = reply('OK', j)
out[#out + 1] = j.workflow
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
