-- ARGV: P. Brings the keys under P to layout 2 (see the top of common.lua) and answers the
-- layout found. Layout 1 (no P:layout key): job hashes with an `id` field and every
-- workflow inline, which layout 2 reads as they are, plus the P:status:pending and P:all
-- ZSETs, which layout 2 does without (P:pending and the other status sets hold the same).
-- Writes nothing unless there is something to migrate: on a new Redis the first submit
-- records the layout (a write at start would share Redis' next fsync with the first
-- acknowledged submits; with appendfsync everysec a slow fsync postpones their write).
local found = redis.call('GET', P .. ':layout')
if found then return tonumber(found) end
if redis.call('EXISTS', P .. ':status:pending', P .. ':all') == 0 then return 2 end
redis.call('UNLINK', P .. ':status:pending', P .. ':all')
redis.call('SET', P .. ':layout', 2)
return 1
