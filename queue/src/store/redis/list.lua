-- ARGV: P, status ('' = any), user ('' = any), limit, offset. Newest first (by seq); each
-- element is a job's fields.
local status, user = ARGV[2], ARGV[3]
local limit, offset = tonumber(ARGV[4]), tonumber(ARGV[5])
local function fields(id)
  local j = load(id)
  if not j then return nil end
  return fields_into({}, j)
end
local out = {}
if limit == 0 then return out end
if status ~= '' and user ~= '' then
  -- Walk the user's jobs, newest first, keeping those in the status.
  local src = P .. ':user:' .. user
  local skipped, start, batch = 0, 0, 200
  while #out < limit do
    local ids = redis.call('ZREVRANGE', src, start, start + batch - 1)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      if redis.call('HGET', jkey(id), 'status') == status then
        if skipped < offset then
          skipped = skipped + 1
        elseif #out < limit then
          out[#out + 1] = fields(id)
        end
      end
    end
    start = start + batch
  end
  return out
end
if user ~= '' or (status ~= '' and status ~= 'pending') then
  local src = P .. ':user:' .. user
  if status ~= '' then src = P .. ':status:' .. status end
  for _, id in ipairs(redis.call('ZREVRANGE', src, offset, offset + limit - 1)) do
    out[#out + 1] = fields(id)
  end
  return out
end
-- Pending jobs (one source per priority band of P:pending, each newest first), and for
-- every status also the other status sets: the newest offset + limit of each, merged.
local need = offset + limit
local sources = {}
for prio = 0, 3 do
  local lo = prio * PRIO_SHIFT
  sources[#sources + 1] = {base = lo, r = redis.call('ZREVRANGEBYSCORE', P .. ':pending',
    '(' .. string.format('%d', lo + PRIO_SHIFT), string.format('%d', lo), 'WITHSCORES',
    'LIMIT', 0, need)}
end
if status == '' then
  for _, st in ipairs({'running', 'completed', 'failed', 'cancelled'}) do
    sources[#sources + 1] = {base = 0,
      r = redis.call('ZREVRANGE', P .. ':status:' .. st, 0, need - 1, 'WITHSCORES')}
  end
end
for _, s in ipairs(sources) do s.i = 1 end
local taken = 0
while taken < need do
  local best, best_seq = nil, nil
  for _, s in ipairs(sources) do
    if s.i <= #s.r then
      local seq = tonumber(s.r[s.i + 1]) - s.base
      if not best_seq or seq > best_seq then best, best_seq = s, seq end
    end
  end
  if not best then break end
  taken = taken + 1
  if taken > offset then out[#out + 1] = fields(best.r[best.i]) end
  best.i = best.i + 2
end
return out
