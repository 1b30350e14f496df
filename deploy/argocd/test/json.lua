-- A small JSON decoder in pure Lua 5.1, for the health-check fixtures (no C modules, no
-- dependencies). Objects become tables with string keys, arrays tables with indices 1..n;
-- null becomes nil. Errors name the byte offset.
local M = {}

local escapes = {
  ['"'] = '"', ["\\"] = "\\", ["/"] = "/",
  b = "\b", f = "\f", n = "\n", r = "\r", t = "\t",
}

local function fail(text, pos, what)
  error(string.format("JSON: %s at offset %d near %q", what, pos, text:sub(pos, pos + 20)), 0)
end

local function skip(text, pos)
  local _, last = text:find("^[ \t\r\n]*", pos)
  return last + 1
end

local function utf8(code)
  if code < 0x80 then
    return string.char(code)
  elseif code < 0x800 then
    return string.char(0xC0 + math.floor(code / 0x40), 0x80 + code % 0x40)
  elseif code < 0x10000 then
    return string.char(0xE0 + math.floor(code / 0x1000), 0x80 + math.floor(code / 0x40) % 0x40,
      0x80 + code % 0x40)
  end
  return string.char(0xF0 + math.floor(code / 0x40000), 0x80 + math.floor(code / 0x1000) % 0x40,
    0x80 + math.floor(code / 0x40) % 0x40, 0x80 + code % 0x40)
end

local value

local function string_at(text, pos)
  local out = {}
  local i = pos + 1
  while true do
    local c = text:sub(i, i)
    if c == "" then
      fail(text, pos, "unterminated string")
    elseif c == '"' then
      return table.concat(out), i + 1
    elseif c == "\\" then
      local e = text:sub(i + 1, i + 1)
      if e == "u" then
        local hex = text:sub(i + 2, i + 5)
        if not hex:find("^%x%x%x%x$") then
          fail(text, i, "bad \\u escape")
        end
        local code = tonumber(hex, 16)
        i = i + 6
        -- A surrogate pair encodes one code point above U+FFFF.
        if code >= 0xD800 and code <= 0xDBFF and text:sub(i, i + 1) == "\\u" then
          local low = tonumber(text:sub(i + 2, i + 5), 16)
          if low ~= nil and low >= 0xDC00 and low <= 0xDFFF then
            code = 0x10000 + (code - 0xD800) * 0x400 + (low - 0xDC00)
            i = i + 6
          end
        end
        out[#out + 1] = utf8(code)
      elseif escapes[e] ~= nil then
        out[#out + 1] = escapes[e]
        i = i + 2
      else
        fail(text, i, "bad escape")
      end
    else
      local last = text:find('["\\]', i)
      if last == nil then
        fail(text, pos, "unterminated string")
      end
      out[#out + 1] = text:sub(i, last - 1)
      i = last
    end
  end
end

local function number_at(text, pos)
  local literal = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
  local n = literal and tonumber(literal)
  if n == nil then
    fail(text, pos, "bad number")
  end
  return n, pos + #literal
end

local function array_at(text, pos)
  local out, n = {}, 0
  pos = skip(text, pos + 1)
  if text:sub(pos, pos) == "]" then
    return out, pos + 1
  end
  while true do
    local v
    v, pos = value(text, pos)
    n = n + 1
    out[n] = v
    pos = skip(text, pos)
    local c = text:sub(pos, pos)
    if c == "]" then
      return out, pos + 1
    elseif c ~= "," then
      fail(text, pos, "expected ',' or ']'")
    end
    pos = skip(text, pos + 1)
  end
end

local function object_at(text, pos)
  local out = {}
  pos = skip(text, pos + 1)
  if text:sub(pos, pos) == "}" then
    return out, pos + 1
  end
  while true do
    if text:sub(pos, pos) ~= '"' then
      fail(text, pos, "expected a key")
    end
    local k
    k, pos = string_at(text, pos)
    pos = skip(text, pos)
    if text:sub(pos, pos) ~= ":" then
      fail(text, pos, "expected ':'")
    end
    local v
    v, pos = value(text, skip(text, pos + 1))
    out[k] = v
    pos = skip(text, pos)
    local c = text:sub(pos, pos)
    if c == "}" then
      return out, pos + 1
    elseif c ~= "," then
      fail(text, pos, "expected ',' or '}'")
    end
    pos = skip(text, pos + 1)
  end
end

value = function(text, pos)
  pos = skip(text, pos)
  local c = text:sub(pos, pos)
  if c == "{" then
    return object_at(text, pos)
  elseif c == "[" then
    return array_at(text, pos)
  elseif c == '"' then
    return string_at(text, pos)
  elseif c == "-" or c:find("%d") then
    return number_at(text, pos)
  elseif text:sub(pos, pos + 3) == "true" then
    return true, pos + 4
  elseif text:sub(pos, pos + 4) == "false" then
    return false, pos + 5
  elseif text:sub(pos, pos + 3) == "null" then
    return nil, pos + 4
  end
  fail(text, pos, "unexpected character")
end

-- Decodes one JSON document; trailing garbage is an error.
function M.decode(text)
  local v, pos = value(text, 1)
  pos = skip(text, pos)
  if pos <= #text then
    fail(text, pos, "trailing characters")
  end
  return v
end

return M
