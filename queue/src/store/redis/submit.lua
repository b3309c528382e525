-- ARGV: P, id, user, priority, now, workflow, metadata, max_attempts, req_class, idem_key,
--       max_pending, max_per_user, inputs (JSON array of {sha256, subfolder, filename}).
-- Reply: job fields, then the queue position; {'UNKNOWN_FILE', index} for an input this
-- user never uploaded (0-based).
local id, user, prio, now = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local idem = ARGV[10]
local max_pending, max_per_user = tonumber(ARGV[11]), tonumber(ARGV[12])
if idem ~= '' then
  local existing = redis.call('HGET', P .. ':idem', user .. '\0' .. idem)
  if existing then
    local j = load(existing)
    local out = reply('EXISTS', j)
    if j.status == 'pending' then
      out[#out + 1] = position(tonumber(j.priority), tonumber(j.seq))
    end
    return out
  end
end
local inputs, uploads = {}, {}
if ARGV[13] ~= '[]' then inputs = cjson.decode(ARGV[13]) end
for i, input in ipairs(inputs) do
  local u = redis.call('HGET', P .. ':upload:' .. user, input.sha256)
  if not u then return fail_reply('UNKNOWN_FILE', tostring(i - 1)) end
  uploads[i] = cjson.decode(u)
end
if max_pending > 0 and redis.call('ZCARD', P .. ':pending') >= max_pending then
  return fail_reply('QUEUE_FULL', tostring(max_pending))
end
if max_per_user > 0 then
  local n = tonumber(redis.call('HGET', P .. ':upending', user) or '0')
    + tonumber(redis.call('HGET', P .. ':urunning', user) or '0')
  if n >= max_per_user then return fail_reply('USER_LIMIT', tostring(max_per_user)) end
end
local seq = redis.call('INCR', P .. ':seq')
-- The first job of a new Redis records the layout (migrate.lua writes nothing there).
if seq == 1 then redis.call('SET', P .. ':layout', 2) end
local k = jkey(id)
-- Defaults (attempts 0, cancel_requested 0, history [], metadata {}, req_class '') are
-- left out: fewer bytes per pending job.
local f = {'seq', seq, 'user_id', user, 'status', 'pending', 'priority', prio,
  'created_at', now, 'max_attempts', ARGV[8]}
local wf = ARGV[6]
if #wf <= INLINE then
  f[#f + 1], f[#f + 2] = 'workflow', wf
else
  redis.call('SET', wfkey(id), wf)
end
if ARGV[7] ~= '{}' then f[#f + 1], f[#f + 2] = 'metadata', ARGV[7] end
if ARGV[9] ~= '' then f[#f + 1], f[#f + 2] = 'req_class', ARGV[9] end
if idem ~= '' then
  f[#f + 1], f[#f + 2] = 'idem_key', idem
  redis.call('HSET', P .. ':idem', user .. '\0' .. idem, id)
end
redis.call('HSET', k, unpack(f))
redis.call('ZADD', P .. ':user:' .. user, seq, id)
for i, input in ipairs(inputs) do
  local pos = redis.call('INCR', P .. ':fileseq')
  local rec = {role = 'input', subfolder = input.subfolder, filename = input.filename,
    sha256 = input.sha256, size = uploads[i].size, content_type = uploads[i].content_type,
    position = pos, created_at = tonumber(now)}
  redis.call('HSET', P .. ':files:' .. id, file_field('input', input.subfolder, input.filename),
    cjson.encode(rec))
  ref_blob(input.sha256, 1)
  -- Naming an upload keeps it usable for another grace period.
  redis.call('ZADD', P .. ':uploads', 'GT', now, user .. '\0' .. input.sha256)
end
if #inputs > 0 then redis.call('SADD', P .. ':fjobs', id) end
move_status(id, user, seq, nil, 'pending')
enter_ready(id, user, prio, seq)
local out = reply('OK', {id = id, seq = tostring(seq), user_id = user, status = 'pending',
  priority = tostring(prio), created_at = now, metadata = ARGV[7], attempts = '0',
  max_attempts = ARGV[8], cancel_requested = '0', history = '[]'})
out[#out + 1] = position(prio, seq)
return out
