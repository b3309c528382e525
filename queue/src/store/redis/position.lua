-- ARGV: P, id. 1-based place among pending jobs by (priority, seq), or false.
return position(ARGV[2])
