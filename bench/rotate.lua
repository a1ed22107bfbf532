-- wrk script for bench/bench_api.py: each thread walks the URL list given after "--"
-- (one path per line), starting at its own offset, so connections do not ask for the same
-- rows at the same moment.
local paths = {}
local idx = 0
local nthreads = 0

function setup(thread)
  thread:set("offset", nthreads)
  nthreads = nthreads + 1
end

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then
      paths[#paths + 1] = line
    end
  end
  idx = (offset or 0) * 7919 % #paths
end

function request()
  idx = idx % #paths + 1
  return wrk.format("GET", paths[idx])
end
