-- Fixture tests of deploy/argocd/health.lua, run by a Lua 5.1 interpreter (the Lua version Argo
-- CD embeds):
--
--   lua5.1 deploy/argocd/test/run.lua                  every case of health_test.json, plus a
--                                                      check that argocd-cm.yaml embeds the script
--   lua5.1 deploy/argocd/test/run.lua --object FILE    the health of one object (JSON), printed
--                                                      as "STATUS<TAB>MESSAGE" (used by the e2e
--                                                      suite on live objects)
--
-- The script runs in a sandbox like Argo CD's for scripts configured in argocd-cm: the object as
-- the global `obj`, the base and table libraries; no string, math, io or os library (Argo CD adds
-- only a "safe" os with time and date, which the script does not need).
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local dir = here .. "/.."
package.path = here .. "/?.lua;" .. package.path
local json = require("json")

local KINDS = { "GameCell", "PlayerService", "MatchmakingPool" }
local STATUSES = { "Healthy", "Progressing", "Degraded" }

local function read(path)
  local f, err = io.open(path, "rb")
  if f == nil then
    error(err, 0)
  end
  local text = f:read("*a")
  f:close()
  return text
end

local sandbox_globals = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber", "tostring",
  "type", "unpack", "xpcall", "table",
}

-- Runs the health script on `object`; returns the table it returns.
local function health(object)
  local chunk = assert(loadfile(dir .. "/health.lua"))
  local env = { obj = object }
  for _, name in ipairs(sandbox_globals) do
    env[name] = _G[name]
  end
  setfenv(chunk, env)
  -- Without Argo CD's string library, strings have no methods either ("x"):find(...).
  local string_meta = getmetatable("")
  local methods = string_meta.__index
  string_meta.__index = nil
  local ok, hs = pcall(chunk)
  string_meta.__index = methods
  if not ok then
    error(hs, 0)
  end
  if type(hs) ~= "table" then
    error("the script returned " .. type(hs) .. ", not a table", 0)
  end
  return hs
end

-- Whether `hs` is what `want` says; the second value says what differs.
local function matches(hs, want)
  if hs.status ~= want.status then
    return false, string.format("status %q, want %q", tostring(hs.status), tostring(want.status))
  end
  if want.message ~= nil and hs.message ~= want.message then
    return false, string.format("message %q, want %q", tostring(hs.message), want.message)
  end
  return true
end

-- The block under `key: |` in a YAML file, dedented by `indent` spaces (text-level, enough for
-- the generated argocd-cm.yaml).
local function block(text, key, indent)
  local lines, inside, out = {}, false, {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line
  end
  local pad = string.rep(" ", indent)
  for _, line in ipairs(lines) do
    if inside then
      if line == "" then
        out[#out + 1] = ""
      elseif line:sub(1, indent) == pad then
        out[#out + 1] = line:sub(indent + 1)
      else
        break
      end
    elseif line:match("^%s*" .. key:gsub("%p", "%%%0") .. ": |%s*$") then
      inside = true
    end
  end
  if not inside then
    return nil
  end
  while #out > 0 and out[#out] == "" do
    out[#out] = nil
  end
  return table.concat(out, "\n") .. "\n"
end

if arg[1] == "--object" then
  local object = json.decode(read(assert(arg[2], "--object needs a file")))
  local hs = health(object)
  io.write(tostring(hs.status), "\t", tostring(hs.message), "\n")
  os.exit(0)
end

local failures, passed = 0, 0
local function failed(what)
  failures = failures + 1
  io.write("FAIL ", what, "\n")
end

-- Every case of health_test.json.
local seen = {}
local cases = json.decode(read(dir .. "/health_test.json")).tests
for _, case in ipairs(cases) do
  local ok, err = pcall(function()
    local object = json.decode(read(dir .. "/" .. case.inputPath))
    local hs = health(object)
    local good, why = matches(hs, case.healthStatus)
    if good then
      passed = passed + 1
      seen[object.kind .. "/" .. hs.status] = true
      io.write("ok   ", case.inputPath, ": ", hs.status, " (", tostring(hs.message), ")\n")
    else
      failed(case.inputPath .. ": " .. why)
    end
  end)
  if not ok then
    failed(case.inputPath .. ": " .. tostring(err))
  end
end

-- Every kind is covered in every status.
for _, kind in ipairs(KINDS) do
  for _, status in ipairs(STATUSES) do
    if not seen[kind .. "/" .. status] then
      failed("no passing case of a " .. kind .. " that is " .. status)
    end
  end
end

-- The check can fail: a wrong expectation is reported.
do
  local hs = { status = "Healthy", message = "Ready: ok" }
  if matches(hs, { status = "Degraded" }) or matches(hs, { status = "Healthy", message = "x" }) then
    failed("the comparison accepts a wrong expectation")
  end
end

-- argocd-cm.yaml embeds the script, byte for byte, for each kind.
do
  local script = read(dir .. "/health.lua")
  local cm = read(dir .. "/argocd-cm.yaml")
  for _, kind in ipairs(KINDS) do
    local key = "resource.customizations.health.gamecell.dev_" .. kind
    local embedded = block(cm, key, 4)
    if embedded == nil then
      failed("argocd-cm.yaml has no " .. key)
    elseif embedded ~= script then
      failed("argocd-cm.yaml: " .. key .. " differs from health.lua: run `hack/lua-tests.sh generate`")
    else
      passed = passed + 1
    end
  end
end

io.write(string.format("%d passed, %d failed (%s)\n", passed, failures, _VERSION))
os.exit(failures == 0 and 0 or 1)
