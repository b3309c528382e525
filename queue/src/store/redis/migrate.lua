-- ARGV: P. Brings the keys under P to layout 2 (see the top of common.lua) and answers the
-- layout found. Layout 1 (no P:layout key): job hashes with an `id` field and every
-- workflow inline, which layout 2 reads as they are, plus the P:status:pending and P:all
-- ZSETs, which layout 2 does without (P:pending and the other status sets hold the same).
local found = tonumber(redis.call('GET', P .. ':layout') or '1')
if found >= 2 then return found end
redis.call('UNLINK', P .. ':status:pending', P .. ':all')
redis.call('SET', P .. ':layout', 2)
return found
