-- ARGV: P, id, 't:' .. token, now, role, subfolder, filename, the file's JSON (FileRecord;
--       position and created_at are set here). Fenced like complete: the worker must hold
--       the live lease. A file with the same (role, subfolder, filename) is replaced and
--       keeps its position. Reply: {'OK', position}.
local id, token, now = ARGV[2], parse_token(ARGV[3]), tonumber(ARGV[4])
local j = load(id, {'lease_fenced'})
local err = fence(j, token, now)
if err then return err end
local fk = P .. ':files:' .. id
local field = file_field(ARGV[5], ARGV[6], ARGV[7])
local rec = cjson.decode(ARGV[8])
local old = redis.call('HGET', fk, field)
local pos
if old then
  local o = cjson.decode(old)
  pos = o.position
  ref_blob(o.sha256, -1)
else
  pos = redis.call('INCR', P .. ':fileseq')
end
rec.position, rec.created_at = pos, now
redis.call('HSET', fk, field, cjson.encode(rec))
ref_blob(rec.sha256, 1)
redis.call('SADD', P .. ':fjobs', id)
return {'OK', string.format('%d', pos)}
