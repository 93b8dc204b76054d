-- Wireshark dissector for the ykt terminal protocol, version 1 (docs/protocol.md).
--
--   wireshark -X lua_script:tools/wireshark/ykt.lua capture.pcap
--   tshark -X lua_script:tools/wireshark/ykt.lua -r capture.pcap -V
--
-- TCP port 9000 by default (preference "ykt.port"; or "Decode As… → YKT"). Frames are
-- reassembled from TCP (§2); every message of §6 (0x0A: §6.18) and of docs/loads.md (0x08, 0x09) is
-- decoded, field names as in the documents; return and information codes are shown with
-- their Chinese texts; the MAC is shown, and verified when the keys are given as
-- preferences (ykt.suite, ykt.master_key, ykt.session_key: -o ykt.session_key:<32 hex>).

-- Generated from crates/ykt-proto/src/codes.rs (a test keeps them equal).
local RETURN_CODES = {
  [0] = "交易成功",
  [1] = "系统故障",
  [2] = "网络故障",
  [3] = "数据库错误",
  [8] = "系统维护中",
  [9] = "系统日终处理中",
  [10] = "前置机未注册",
  [11] = "前置机未激活",
  [12] = "前置机未签到",
  [13] = "前置机已注销",
  [14] = "前置机密钥错",
  [15] = "前置机无此功能",
  [20] = "POS 未注册",
  [21] = "POS 未签到",
  [22] = "POS 未启用",
  [23] = "POS 已停用",
  [24] = "POS 已注销",
  [25] = "POS 终端号错误",
  [26] = "POS 无指定商户",
  [27] = "POS 非工作时间",
  [28] = "POS 无此功能",
  [29] = "POS 未授权",
  [30] = "POS 流水号重复",
  [31] = "流水不存在",
  [32] = "交易已冲正",
  [33] = "搭伙费率错误",
  [34] = "交易金额错误",
  [35] = "交易类型错误",
  [36] = "POS 商户号错误",
  [37] = "有补助不能冲正",
  [40] = "商户号不存在",
  [41] = "商户已注销",
  [42] = "商户类型错误",
  [43] = "商户账户已止付",
  [44] = "商户账户异常",
  [45] = "商户余额不足",
  [50] = "卡号不存在",
  [51] = "卡已挂失",
  [52] = "卡已冻结",
  [53] = "卡已登记为坏卡",
  [54] = "卡已锁定",
  [55] = "卡已禁用",
  [56] = "卡已过有效期",
  [57] = "卡已注销",
  [58] = "卡状态异常",
  [59] = "卡无此权限",
  [60] = "卡密码错误",
  [61] = "卡交易次数重复",
  [62] = "卡交易次数异常",
  [63] = "卡补助序号异常",
  [64] = "卡余额不足",
  [65] = "卡已透支",
  [66] = "卡余额超过限额",
  [67] = "卡余额异常",
  [68] = "卡账户余额不足",
  [69] = "卡账户已透支",
  [70] = "卡账户异常",
  [71] = "消费金额超限",
  [80] = "授权卡号不存在",
  [81] = "授权卡已挂失",
  [82] = "授权卡已冻结",
  [83] = "授权卡已锁定",
  [84] = "授权卡已禁用",
  [85] = "授权卡未生效",
  [86] = "授权卡已失效",
  [87] = "授权卡已注销",
  [88] = "授权卡无此权限",
  [89] = "授权卡密码错误",
  [90] = "充值已达到限额",
  [99] = "其他错误",
}
local INFO_CODES = {
  [0] = "无提示信息",
  [1] = "卡余额即将用完",
  [2] = "卡有补助未领",
  [3] = "卡即将过期",
  [4] = "卡有记录缺失",
  [5] = "卡余额与系统不一致",
  [6] = "卡信息需要修正",
  [7] = "交易已冲正",
  [8] = "消费流水不存在",
  [9] = "充值流水不存在",
}
local ERROR_REASONS = {
  [1] = "malformed", [2] = "unknown message type", [3] = "unsupported version",
  [4] = "bad MAC", [5] = "replay", [6] = "wrong device", [7] = "unexpected message",
  [8] = "not signed in", [9] = "unknown device",
}
local MESSAGE_TYPES = {
  [0x01] = "sign-in", [0x02] = "heartbeat", [0x03] = "online debit", [0x04] = "record upload",
  [0x05] = "blacklist changes", [0x06] = "bulk blacklist", [0x07] = "parameter download",
  [0x08] = "load authorisation 圈存授权", [0x09] = "what waits 查询待领",
  [0x0A] = "authorisation card check 授权卡校验",
  [0x41] = "clock set", [0x42] = "status query", [0x43] = "record collection",
  [0x44] = "parameter push", [0x7F] = "error response",
}
local CARD_TYPES = { [1] = "MF1", [2] = "CPU" }
local WORK_MODES = { [0] = "full online 完全联机", [1] = "auto 自动联机", [2] = "offline 脱机" }
local SIGN_IN_MODES = { [0] = "无联机校验", [1] = "有联机校验" }
local RECORD_KINDS = {
  [1] = "purchase 消费", [2] = "cancellation", [3] = "reversal 冲正", [4] = "black card 黑卡消费",
  [5] = "collected from the card", [6] = "top-up", [7] = "subsidy pick-up",
}
local RECORD_STATUSES = {
  [1] = "发起交易", [2] = "未写卡", [3] = "交易成功", [4] = "扣款成功", [5] = "写卡成功",
  [6] = "中途拔卡", [7] = "failed",
}
local CONSUMPTION_MODES = { [0] = "unit price 单价", [1] = "fixed amount 定额", [2] = "keyboard-coded 键盘编码" }
local LOAD_PURPOSES = { [1] = "top-up with cash", [2] = "top-up from the bank", [3] = "pick-up of what waits" }
local BL_OPS = { [1] = "add", [2] = "remove" }
local AUTH_FUNCTIONS = {
  [1] = "manual sign-in 手工签到", [2] = "work-mode change 切换工作模式", [3] = "reversal 冲正",
  [4] = "statistics 统计", [5] = "clearing the offline time 清除脱机时间",
}

local ykt = Proto("ykt", "YKT campus one-card terminal protocol")
ykt.prefs.port = Pref.uint("TCP port", 9000, "The port terminals connect to (ykt serve --terminal-listen)")

local fields = {}
local function field(abbr, ftype, label, valstr, base)
  local f = ftype("ykt." .. abbr, label, base, valstr)
  fields[abbr] = f
  return f
end
local function code_text(t, v)
  return t[v] or "其他错误"
end

-- Header (§2).
field("length", ProtoField.uint16, "length L")
field("magic", ProtoField.bytes, "magic")
field("version", ProtoField.uint8, "version")
field("type", ProtoField.uint8, "message type", MESSAGE_TYPES, base.HEX)
field("flags", ProtoField.uint8, "flags", nil, base.HEX)
field("flags.response", ProtoField.bool, "response")
field("flags.host", ProtoField.bool, "sent by the host")
field("device", ProtoField.bytes, "physical ID")
field("seq", ProtoField.uint32, "sequence number")
field("corr", ProtoField.uint32, "correlation")
field("mac", ProtoField.bytes, "MAC")
field("ret", ProtoField.uint8, "ret")
field("ret.text", ProtoField.string, "ret text")
field("info", ProtoField.uint8, "info")
field("info.text", ProtoField.string, "info text")

local ef_trailing = ProtoExpert.new("ykt.trailing", "Body longer than its layout", expert.group.MALFORMED, expert.severity.ERROR)
local ef_short = ProtoExpert.new("ykt.short", "Body shorter than its layout", expert.group.MALFORMED, expert.severity.ERROR)
local ef_magic = ProtoExpert.new("ykt.magic_wrong", "Not a ykt frame (magic)", expert.group.MALFORMED, expert.severity.ERROR)
local ef_bad_mac = ProtoExpert.new("ykt.bad_mac", "MAC does not verify under the given key", expert.group.CHECKSUM, expert.severity.WARN)
ykt.experts = { ef_trailing, ef_short, ef_magic, ef_bad_mac }

-- A body reader: each call adds one field and moves on; past the end it marks the frame.
local Reader = {}
Reader.__index = Reader
local function reader(tvb, off, len, tree)
  return setmetatable({ tvb = tvb, off = off, stop = off + len, tree = tree, short = false }, Reader)
end
function Reader:take(n)
  if self.short or self.off + n > self.stop then
    self.short = true
    return nil
  end
  local r = self.tvb(self.off, n)
  self.off = self.off + n
  return r
end
function Reader:left() return self.stop - self.off end

-- Field kinds (§3). `declare` registers the field; `read` adds it and returns its value.
local KINDS = {
  u8 = { ProtoField.uint8, 1, function(r) return r:uint() end },
  u16 = { ProtoField.uint16, 2, function(r) return r:uint() end },
  u32 = { ProtoField.uint32, 4, function(r) return r:uint() end },
  money = { ProtoField.int64, 8, function(r) return r:int64() end },
  cardno = { ProtoField.uint32, 4, function(r) return r:uint() end },
  bool = { ProtoField.bool, 1, function(r) return r:uint() end },
  datetime = { ProtoField.string, 7, nil },
  tod = { ProtoField.string, 3, nil },
}
local function bcd(r)
  local s = ""
  for i = 0, r:len() - 1 do s = s .. string.format("%02X", r(i, 1):uint()) end
  return s
end
local function datetime_text(r)
  local s = bcd(r)
  return string.format("%s-%s-%s %s:%s:%s", s:sub(1, 4), s:sub(5, 6), s:sub(7, 8), s:sub(9, 10), s:sub(11, 12), s:sub(13, 14))
end
local function tod_text(r)
  local s = bcd(r)
  return string.format("%s:%s:%s", s:sub(1, 2), s:sub(3, 4), s:sub(5, 6))
end

-- Declares `prefix.name` of `kind` (or bytes of a size) with an optional value table.
local function decl(prefix, name, kind, label, vals)
  local abbr = prefix .. "." .. name
  if fields[abbr] then return abbr end
  if type(kind) == "number" then
    field(abbr, ProtoField.bytes, label)
  elseif kind == "u8" and vals then
    field(abbr, ProtoField.uint8, label, vals)
  elseif kind == "bool" then
    field(abbr, ProtoField.bool, label)
  else
    field(abbr, KINDS[kind][1], label)
  end
  return abbr
end

-- Fen as yuan, exactly: 12345 → "123.45" (the digits of the integer, never a float).
local function yuan(v)
  local digits = tostring(v)
  local sign = ""
  if digits:sub(1, 1) == "-" then
    sign, digits = "-", digits:sub(2)
  end
  digits = string.rep("0", 3 - #digits) .. digits
  return sign .. digits:sub(1, -3) .. "." .. digits:sub(-2)
end

-- Adds one field to `tree` from reader `rd`; returns its value (a number where it is one).
local function add(rd, tree, abbr, kind)
  local f = fields[abbr]
  local size = type(kind) == "number" and kind or KINDS[kind][2]
  local r = rd:take(size)
  if not r then return nil end
  if type(kind) == "number" then
    tree:add(f, r)
    return r:bytes()
  elseif kind == "datetime" then
    tree:add(f, r, datetime_text(r))
  elseif kind == "tod" then
    tree:add(f, r, tod_text(r))
  elseif kind == "money" then
    tree:add(f, r):append_text(" fen (" .. yuan(r:int64()) .. " 元)")
    return r:int64()
  elseif kind == "bool" then
    tree:add(f, r)
    return r:uint()
  else
    tree:add(f, r)
    return r:uint()
  end
end

-- Layouts: lists of { name, kind, label, value table }. `ret` and `info` are added first
-- by every response.
local function layout(prefix, list)
  for _, e in ipairs(list) do decl(prefix, e[1], e[2], e[3], e[4]) end
  return function(rd, tree)
    local v = {}
    for _, e in ipairs(list) do v[e[1]] = add(rd, tree, prefix .. "." .. e[1], e[2]) end
    return v
  end
end

local function ret_info(rd, tree)
  local r = rd:take(1)
  if not r then return end
  local code = r:uint()
  tree:add(fields["ret"], r):append_text(" " .. code_text(RETURN_CODES, code))
  tree:add(fields["ret.text"], r, code_text(RETURN_CODES, code))
  local i = rd:take(1)
  if not i then return code end
  local info = i:uint()
  tree:add(fields["info"], i):append_text(" " .. (INFO_CODES[info] or "未定义"))
  tree:add(fields["info.text"], i, INFO_CODES[info] or "未定义")
  return code
end

local record = layout("record", {
  { "device", 4, "physical ID of the terminal that made the record" },
  { "serial", "u32", "terminal serial number (流水号)" },
  { "kind", "u8", "kind", RECORD_KINDS },
  { "status", "u8", "status", RECORD_STATUSES },
  { "online", "bool", "authorised online" },
  { "card_type", "u8", "card type", CARD_TYPES },
  { "card_no", "cardno", "card number" },
  { "card_counter", "u32", "card lifetime counter before the transaction" },
  { "wallet", "u8", "wallet number" },
  { "balance_before", "money", "balance before" },
  { "amount", "money", "amount" },
  { "fee", "money", "fee" },
  { "balance_after", "money", "balance after" },
  { "time", "datetime", "transaction time" },
  { "merchant_no", "u32", "merchant number" },
  { "has_original", "bool", "has original serial" },
  { "original_serial", "u32", "original serial" },
  { "item_code", "u16", "item code" },
  { "tac", "u32", "TAC" },
})

local params_head = layout("params", {
  { "version", "u32", "parameter version" },
  { "work_mode", "u8", "work mode", WORK_MODES },
  { "consumption_mode", "u8", "consumption mode", CONSUMPTION_MODES },
  { "fixed_amount", "money", "fixed amount (定额)" },
  { "classes", 32, "allowed card classes" },
  { "fee_rates", 256, "fee rate in percent for class 0 … 255" },
  { "max_balance", "money", "maximum card balance" },
  { "min_balance", "money", "minimum card balance" },
  { "max_uses_per_day", "u16", "maximum uses per card per day" },
  { "password_single", "money", "single-transaction password threshold" },
  { "password_daily", "money", "daily cumulative password threshold" },
  { "wallet", "u8", "wallet number" },
  { "max_offline_hours", "u16", "maximum offline hours" },
  { "windows", "u8", "working-hours windows" },
})
local window = layout("params.window", { { "start", "tod", "start" }, { "end", "tod", "end" } })
decl("params", "items", "u16", "price-list items")
decl("params", "operator_card", "u8", "functions that need an operator card (R-B11): bit 0 manual sign-in, 1 work mode, 2 reversal, 3 statistics, 4 clear offline time")
local item = layout("params.item", {
  { "code", "u16", "code" }, { "price", "money", "price" }, { "subject", "u16", "accounting subject 科目" },
})

-- §6.15.
local function params_block(rd, tree)
  local t = tree:add(ykt, rd.tvb(rd.off, math.max(0, math.min(343, rd:left()))), "Parameter block")
  local v = params_head(rd, t)
  for i = 1, (v.windows or 0) do window(rd, t:add(ykt, rd.tvb(rd.off, 0), "window " .. i)) end
  local k = add(rd, t, "params.items", "u16") or 0
  for i = 1, k do item(rd, t:add(ykt, rd.tvb(rd.off, 0), "item " .. i)) end
  add(rd, t, "params.operator_card", "u8")
end

local function present_params(prefix)
  decl(prefix, "present", "bool", "parameter block present")
  return function(rd, tree)
    if add(rd, tree, prefix .. ".present", "bool") == 1 then params_block(rd, tree) end
  end
end

-- Body dissectors by (type, response).
local BODIES = {}
local function req(t, f) BODIES[t * 2] = f end
local function resp(t, f) BODIES[t * 2 + 1] = function(rd, tree) ret_info(rd, tree); f(rd, tree) end end

req(0x01, layout("sign_in_req", {
  { "suite", "u8", "suite of the device's master key", { [1] = "AES-128", [2] = "SM4" } },
  { "clock", "datetime", "terminal clock" },
  { "blacklist_version", "u32", "terminal blacklist version" },
  { "params_version", "u32", "terminal parameter version" },
  { "nonce", 8, "nonce" },
}))
do
  local head = layout("sign_in_resp", {
    { "nonce", 8, "nonce of the request, echoed" },
    { "merchant_no", "u32", "merchant number" },
    { "merchant_name_len", "u8", "merchant name length" },
  })
  field("sign_in_resp.merchant_name", ProtoField.string, "merchant name")
  local tail = layout("sign_in_resp", {
    { "work_mode", "u8", "sign-in work mode 工作模式", SIGN_IN_MODES },
    { "blacklist_version", "u32", "system blacklist version" },
    { "clock", "datetime", "system clock" },
    { "wrapped_key", 16, "E(master key, session key)" },
    { "kcv", 4, "KCV of the session key" },
  })
  local params = present_params("sign_in_resp")
  resp(0x01, function(rd, tree)
    local v = head(rd, tree)
    local r = rd:take(v.merchant_name_len or 0)
    if r then tree:add(fields["sign_in_resp.merchant_name"], r, r:string(ENC_UTF_8)) end
    tail(rd, tree)
    params(rd, tree)
  end)
end
req(0x02, layout("heartbeat_req", {
  { "clock", "datetime", "terminal clock" },
  { "blacklist_version", "u32", "terminal blacklist version" },
  { "params_version", "u32", "terminal parameter version" },
  { "pending_records", "u32", "records not yet uploaded" },
}))
resp(0x02, layout("heartbeat_resp", {
  { "blacklist_version", "u32", "system blacklist version" },
  { "params_version", "u32", "current parameter version for this terminal" },
  { "clock", "datetime", "system clock" },
}))
req(0x03, layout("debit_req", {
  { "card_no", "cardno", "card number" },
  { "card_type", "u8", "card type", CARD_TYPES },
  { "card_counter", "u32", "the card's lifetime transaction counter before this debit" },
  { "balance_before", "money", "card balance before" },
  { "amount", "money", "amount, fee excluded" },
  { "fee", "money", "fee" },
  { "wallet", "u8", "wallet number" },
  { "item_code", "u16", "item code" },
  { "serial", "u32", "terminal serial number of the journalled record" },
  { "time", "datetime", "transaction time (terminal clock)" },
}))
resp(0x03, layout("debit_resp", {
  { "serial", "u32", "terminal serial, echoed" },
  { "card_no", "cardno", "card number, echoed" },
  { "amount", "money", "authorised amount" },
  { "fee", "money", "authorised fee" },
  { "balance", "money", "the card account's balance after this debit" },
  { "collect_last", "u8", "collect the card's last N records" },
}))
decl("upload_req", "count", "u8", "count")
req(0x04, function(rd, tree)
  local n = add(rd, tree, "upload_req.count", "u8") or 0
  for i = 1, n do
    record(rd, tree:add(ykt, rd.tvb(rd.off, math.max(0, math.min(75, rd:left()))), "record " .. i))
  end
end)
decl("upload_resp", "count", "u8", "count")
local upload_result = layout("upload_resp.result", { { "serial", "u32", "serial" }, { "code", "u8", "return code", RETURN_CODES } })
resp(0x04, function(rd, tree)
  local n = add(rd, tree, "upload_resp.count", "u8") or 0
  for i = 1, n do upload_result(rd, tree:add(ykt, rd.tvb(rd.off, math.max(0, math.min(5, rd:left()))), "result " .. i)) end
end)
req(0x05, layout("bl_delta_req", { { "since", "u32", "since" }, { "max_entries", "u16", "max entries" } }))
do
  local head = layout("bl_delta_resp", {
    { "from", "u32", "from version" }, { "to", "u32", "to version" },
    { "more", "bool", "more pages follow" }, { "count", "u16", "count" },
  })
  field("bl_delta_resp.op", ProtoField.uint8, "operation", BL_OPS)
  field("bl_delta_resp.card_no", ProtoField.uint32, "card number")
  resp(0x05, function(rd, tree)
    local v = head(rd, tree)
    for i = 1, (v.count or 0) do
      local r = rd:take(4)
      if not r then return end
      local e = tree:add(ykt, r, "entry " .. i)
      e:add(fields["bl_delta_resp.op"], r(0, 1))
      e:add(fields["bl_delta_resp.card_no"], r(1, 3))
    end
  end)
end
req(0x06, layout("bl_bulk_req", { { "version", "u32", "version" }, { "segment", "u16", "segment" } }))
do
  local head = layout("bl_bulk_resp", {
    { "version", "u32", "version of the list this segment belongs to" },
    { "segment", "u16", "segment index" }, { "segments", "u16", "segment count" },
    { "present", "bool", "bitmap present" },
  })
  decl("bl_bulk_resp", "bitmap", 32768, "bitmap")
  resp(0x06, function(rd, tree)
    if head(rd, tree).present == 1 then add(rd, tree, "bl_bulk_resp.bitmap", 32768) end
  end)
end
req(0x07, layout("params_req", { { "version", "u32", "the terminal's parameter version" } }))
resp(0x07, present_params("params_resp"))
req(0x08, layout("load_req", {
  { "purpose", "u8", "purpose", LOAD_PURPOSES },
  { "card_no", "cardno", "card number" },
  { "card_type", "u8", "card type", CARD_TYPES },
  { "card_counter", "u32", "the card's lifetime counter before the load" },
  { "balance_before", "money", "card balance before" },
  { "amount", "money", "amount" },
  { "subsidy_seq", "u16", "the card's subsidy sequence before" },
  { "wallet", "u8", "wallet number" },
  { "serial", "u32", "terminal serial of the journalled record" },
  { "time", "datetime", "transaction time (terminal clock)" },
  { "online_seq", "u16", "online sequence from INITIALIZE FOR LOAD" },
  { "random", 4, "random from INITIALIZE FOR LOAD" },
  { "mac1", 4, "MAC1" },
  { "terminal_id", 6, "terminal ID used in INITIALIZE FOR LOAD" },
  { "reserved", 16, "reserved" },
}))
resp(0x08, layout("load_resp", {
  { "serial", "u32", "serial (echoed)" },
  { "card_no", "cardno", "card no (echoed)" },
  { "amount", "money", "amount authorised" },
  { "balance_after", "money", "balance after (the card's, as the host expects it)" },
  { "subsidy_seq", "u16", "subsidy sequence after" },
  { "mac2", 4, "MAC2" },
  { "account_balance", "money", "the card account's balance on the books after" },
  { "reserved", "u16", "reserved" },
}))
req(0x09, layout("waits_req", {
  { "card_no", "cardno", "card no" },
  { "card_type", "u8", "card type", CARD_TYPES },
  { "subsidy_seq", "u16", "subsidy sequence on the card" },
  { "card_counter", "u32", "lifetime counter" },
  { "balance", "money", "balance" },
}))
resp(0x09, layout("waits_resp", {
  { "card_no", "cardno", "card no" },
  { "amount", "money", "amount waiting" },
  { "loads", "u16", "number of loads" },
  { "subsidy_seq", "u16", "subsidy sequence after a pick-up" },
}))
req(0x0A, layout("auth_req", {
  { "card_no", "u32", "authorisation card number" },
  { "function", "u8", "function", AUTH_FUNCTIONS },
  { "time", "datetime", "terminal clock" },
  { "nonce", "u32", "nonce bound into the PIN block" },
  { "pin_block", 16, "PIN block under the session's PIN key" },
}))
resp(0x0A, layout("auth_resp", {
  { "card_no", "u32", "authorisation card number, echoed" },
  { "function", "u8", "function, echoed", AUTH_FUNCTIONS },
  { "operator", "u32", "operator id (0 when refused)" },
  { "tries_left", "u8", "PIN attempts left" },
}))
req(0x41, layout("clock_set_req", { { "clock", "datetime", "new clock" } }))
resp(0x41, layout("clock_set_resp", { { "clock", "datetime", "the terminal's clock after setting" } }))
req(0x42, function() end)
resp(0x42, layout("status", {
  { "pending_records", "u32", "records not yet uploaded" },
  { "clock", "datetime", "terminal clock" },
  { "blacklist_version", "u32", "terminal blacklist version" },
  { "params_version", "u32", "terminal parameter version" },
  { "work_mode", "u8", "current work mode", WORK_MODES },
  { "offline_minutes", "u32", "accumulated offline time, minutes" },
}))
req(0x43, layout("collect_req", { { "card_no", "cardno", "card no" }, { "n", "u8", "N" } }))
resp(0x43, function() end)
req(0x44, params_block)
resp(0x44, layout("params_push_resp", { { "version", "u32", "the version the terminal now holds" } }))
resp(0x7F, layout("error", {
  { "reason", "u8", "reason", ERROR_REASONS },
  { "min_version", "u8", "lowest protocol version the sender speaks" },
  { "max_version", "u8", "highest protocol version the sender speaks" },
}))


-- ---- MAC verification (§4.2), when the keys are given as preferences ----------------------
-- AES-128 and SM4 block encryption and CMAC (RFC 4493), in plain Lua: slow, but a capture
-- is small. Sign-in frames (0x01) are MAC'd under the master key, every other frame under the
-- session key; an error response with 8 zero bytes carries no MAC.

local band, bor, bxor, lshift, rshift = bit.band, bit.bor, bit.bxor, bit.lshift, bit.rshift

local function gmul(a, b)
  local p = 0
  for _ = 1, 8 do
    if band(b, 1) ~= 0 then p = bxor(p, a) end
    local hi = band(a, 0x80)
    a = band(lshift(a, 1), 0xff)
    if hi ~= 0 then a = bxor(a, 0x1b) end
    b = rshift(b, 1)
  end
  return p
end

-- The AES S-box, computed (FIPS 197 §5.1.1): inverse in GF(2^8), then the affine map.
local AES_SBOX = {}
do
  local inverse = { [0] = 0 }
  for x = 1, 255 do
    if not inverse[x] then
      for y = 1, 255 do
        if gmul(x, y) == 1 then
          inverse[x], inverse[y] = y, x
          break
        end
      end
    end
  end
  for x = 0, 255 do
    local s, r = inverse[x], inverse[x]
    for _ = 1, 4 do
      r = band(bor(lshift(r, 1), rshift(r, 7)), 0xff)
      s = bxor(s, r)
    end
    AES_SBOX[x] = bxor(s, 0x63)
  end
end

-- A block cipher's encryption under `key` (16 bytes, 0-indexed): a function of a block.
local function aes128(key)
  local w = {}
  for i = 0, 15 do w[i] = key[i] end
  local rcon = 1
  for i = 16, 175, 4 do
    local t0, t1, t2, t3 = w[i - 4], w[i - 3], w[i - 2], w[i - 1]
    if i % 16 == 0 then
      t0, t1, t2, t3 = bxor(AES_SBOX[t1], rcon), AES_SBOX[t2], AES_SBOX[t3], AES_SBOX[t0]
      rcon = gmul(rcon, 2)
    end
    w[i], w[i + 1], w[i + 2], w[i + 3] =
      bxor(w[i - 16], t0), bxor(w[i - 15], t1), bxor(w[i - 14], t2), bxor(w[i - 13], t3)
  end
  return function(block)
    local s = {}
    for i = 0, 15 do s[i] = bxor(block[i], w[i]) end
    for round = 1, 10 do
      local t = {}
      for c = 0, 3 do
        for r = 0, 3 do t[c * 4 + r] = AES_SBOX[s[((c + r) % 4) * 4 + r]] end
      end
      if round < 10 then
        for c = 0, 3 do
          local a0, a1, a2, a3 = t[c * 4], t[c * 4 + 1], t[c * 4 + 2], t[c * 4 + 3]
          local x = bxor(a0, a1, a2, a3)
          t[c * 4] = bxor(a0, x, gmul(bxor(a0, a1), 2))
          t[c * 4 + 1] = bxor(a1, x, gmul(bxor(a1, a2), 2))
          t[c * 4 + 2] = bxor(a2, x, gmul(bxor(a2, a3), 2))
          t[c * 4 + 3] = bxor(a3, x, gmul(bxor(a3, a0), 2))
        end
      end
      for i = 0, 15 do s[i] = bxor(t[i], w[round * 16 + i]) end
    end
    return s
  end
end

local SM4_SBOX = {
  0xd6, 0x90, 0xe9, 0xfe, 0xcc, 0xe1, 0x3d, 0xb7, 0x16, 0xb6, 0x14, 0xc2, 0x28, 0xfb, 0x2c, 0x05,
  0x2b, 0x67, 0x9a, 0x76, 0x2a, 0xbe, 0x04, 0xc3, 0xaa, 0x44, 0x13, 0x26, 0x49, 0x86, 0x06, 0x99,
  0x9c, 0x42, 0x50, 0xf4, 0x91, 0xef, 0x98, 0x7a, 0x33, 0x54, 0x0b, 0x43, 0xed, 0xcf, 0xac, 0x62,
  0xe4, 0xb3, 0x1c, 0xa9, 0xc9, 0x08, 0xe8, 0x95, 0x80, 0xdf, 0x94, 0xfa, 0x75, 0x8f, 0x3f, 0xa6,
  0x47, 0x07, 0xa7, 0xfc, 0xf3, 0x73, 0x17, 0xba, 0x83, 0x59, 0x3c, 0x19, 0xe6, 0x85, 0x4f, 0xa8,
  0x68, 0x6b, 0x81, 0xb2, 0x71, 0x64, 0xda, 0x8b, 0xf8, 0xeb, 0x0f, 0x4b, 0x70, 0x56, 0x9d, 0x35,
  0x1e, 0x24, 0x0e, 0x5e, 0x63, 0x58, 0xd1, 0xa2, 0x25, 0x22, 0x7c, 0x3b, 0x01, 0x21, 0x78, 0x87,
  0xd4, 0x00, 0x46, 0x57, 0x9f, 0xd3, 0x27, 0x52, 0x4c, 0x36, 0x02, 0xe7, 0xa0, 0xc4, 0xc8, 0x9e,
  0xea, 0xbf, 0x8a, 0xd2, 0x40, 0xc7, 0x38, 0xb5, 0xa3, 0xf7, 0xf2, 0xce, 0xf9, 0x61, 0x15, 0xa1,
  0xe0, 0xae, 0x5d, 0xa4, 0x9b, 0x34, 0x1a, 0x55, 0xad, 0x93, 0x32, 0x30, 0xf5, 0x8c, 0xb1, 0xe3,
  0x1d, 0xf6, 0xe2, 0x2e, 0x82, 0x66, 0xca, 0x60, 0xc0, 0x29, 0x23, 0xab, 0x0d, 0x53, 0x4e, 0x6f,
  0xd5, 0xdb, 0x37, 0x45, 0xde, 0xfd, 0x8e, 0x2f, 0x03, 0xff, 0x6a, 0x72, 0x6d, 0x6c, 0x5b, 0x51,
  0x8d, 0x1b, 0xaf, 0x92, 0xbb, 0xdd, 0xbc, 0x7f, 0x11, 0xd9, 0x5c, 0x41, 0x1f, 0x10, 0x5a, 0xd8,
  0x0a, 0xc1, 0x31, 0x88, 0xa5, 0xcd, 0x7b, 0xbd, 0x2d, 0x74, 0xd0, 0x12, 0xb8, 0xe5, 0xb4, 0xb0,
  0x89, 0x69, 0x97, 0x4a, 0x0c, 0x96, 0x77, 0x7e, 0x65, 0xb9, 0xf1, 0x09, 0xc5, 0x6e, 0xc6, 0x84,
  0x18, 0xf0, 0x7d, 0xec, 0x3a, 0xdc, 0x4d, 0x20, 0x79, 0xee, 0x5f, 0x3e, 0xd7, 0xcb, 0x39, 0x48,
}
local SM4_FK = {
  0xa3b1bac6, 0x56aa3350, 0x677d9197, 0xb27022dc,
}
local SM4_CK = {
  0x00070e15, 0x1c232a31, 0x383f464d, 0x545b6269,
  0x70777e85, 0x8c939aa1, 0xa8afb6bd, 0xc4cbd2d9,
  0xe0e7eef5, 0xfc030a11, 0x181f262d, 0x343b4249,
  0x50575e65, 0x6c737a81, 0x888f969d, 0xa4abb2b9,
  0xc0c7ced5, 0xdce3eaf1, 0xf8ff060d, 0x141b2229,
  0x30373e45, 0x4c535a61, 0x686f767d, 0x848b9299,
  0xa0a7aeb5, 0xbcc3cad1, 0xd8dfe6ed, 0xf4fb0209,
  0x10171e25, 0x2c333a41, 0x484f565d, 0x646b7279,
}

local function word(b, at)
  return bor(lshift(b[at], 24), lshift(b[at + 1], 16), lshift(b[at + 2], 8), b[at + 3])
end
local function rotl(x, n) return bor(lshift(x, n), rshift(x, 32 - n)) end
local function tau(a)
  return bor(lshift(SM4_SBOX[band(rshift(a, 24), 0xff) + 1], 24),
    lshift(SM4_SBOX[band(rshift(a, 16), 0xff) + 1], 16),
    lshift(SM4_SBOX[band(rshift(a, 8), 0xff) + 1], 8),
    SM4_SBOX[band(a, 0xff) + 1])
end

-- SM4 (GB/T 32907).
local function sm4(key)
  local k, rk = {}, {}
  for i = 0, 3 do k[i] = bxor(word(key, i * 4), SM4_FK[i + 1]) end
  for i = 0, 31 do
    local b = tau(bxor(k[i + 1], k[i + 2], k[i + 3], SM4_CK[i + 1]))
    k[i + 4] = bxor(k[i], b, rotl(b, 13), rotl(b, 23))
    rk[i] = k[i + 4]
  end
  return function(block)
    local x = {}
    for i = 0, 3 do x[i] = word(block, i * 4) end
    for i = 0, 31 do
      local b = tau(bxor(x[i + 1], x[i + 2], x[i + 3], rk[i]))
      x[i + 4] = bxor(x[i], b, rotl(b, 2), rotl(b, 10), rotl(b, 18), rotl(b, 24))
    end
    local out = {}
    for j = 0, 3 do
      local v = x[35 - j]
      for n = 0, 3 do out[j * 4 + n] = band(rshift(v, 24 - 8 * n), 0xff) end
    end
    return out
  end
end

local function dbl(b)
  local out, carry = {}, 0
  for i = 15, 0, -1 do
    out[i] = band(bor(lshift(b[i], 1), carry), 0xff)
    carry = rshift(b[i], 7)
  end
  if carry == 1 then out[15] = bxor(out[15], 0x87) end
  return out
end

-- CMAC of `msg` (0-indexed bytes, `n` of them) under the cipher `enc`.
local function cmac(enc, msg, n)
  local zero = {}
  for i = 0, 15 do zero[i] = 0 end
  local k1 = dbl(enc(zero))
  local k2 = dbl(k1)
  local blocks = math.max(1, math.ceil(n / 16))
  local complete = n > 0 and n % 16 == 0
  local x = zero
  for b = 0, blocks - 1 do
    local y = {}
    for i = 0, 15 do
      local at = b * 16 + i
      local v
      if at < n then v = msg[at] elseif at == n then v = 0x80 else v = 0 end
      if b == blocks - 1 then v = bxor(v, complete and k1[i] or k2[i]) end
      y[i] = bxor(x[i], v)
    end
    x = enc(y)
  end
  return x
end

-- Keys from the preferences, expanded once per value.
local cipher_cache = {}
local function cipher(hex, suite)
  if not hex or #hex ~= 32 or not hex:match("^%x+$") then return nil end
  local id = suite .. ":" .. hex:lower()
  if not cipher_cache[id] then
    local key = {}
    for i = 0, 15 do key[i] = tonumber(hex:sub(2 * i + 1, 2 * i + 2), 16) end
    cipher_cache[id] = (suite == 2) and sm4(key) or aes128(key)
  end
  return cipher_cache[id]
end

ykt.prefs.suite = Pref.uint("Suite", 1, "The devices' suite: 1 AES-128, 2 SM4 (§4.1)")
ykt.prefs.master_key = Pref.string("Master key", "", "A device master key, 32 hex digits: verifies sign-in MACs")
ykt.prefs.session_key = Pref.string("Session key", "", "A session key, 32 hex digits: verifies every other frame's MAC")
field("mac.valid", ProtoField.bool, "MAC verified")

-- Adds the verification of the frame's MAC, when its key is given.
local function verify_mac(tvb, tree, mac_item, msg)
  local len = tvb:len()
  local mac = tvb(len - 8, 8):bytes()
  local unauthenticated = msg == 0x7F and tostring(mac) == "0000000000000000"
  if unauthenticated then
    mac_item:append_text(" (none: unauthenticated)")
    return
  end
  local hex = (msg == 0x01) and ykt.prefs.master_key or ykt.prefs.session_key
  local enc = cipher(hex, ykt.prefs.suite)
  if not enc then return end
  local bytes = tvb(0, len - 8):bytes()
  local msgb = {}
  for i = 0, bytes:len() - 1 do msgb[i] = bytes:get_index(i) end
  local full = cmac(enc, msgb, bytes:len())
  local ok = true
  for i = 0, 8 - 1 do
    if full[i] ~= mac:get_index(i) then ok = false end
  end
  mac_item:add(fields["mac.valid"], tvb(len - 8, 8), ok)
  if not ok then mac_item:add_proto_expert_info(ef_bad_mac) end
end

ykt.fields = {}
for _, f in pairs(fields) do table.insert(ykt.fields, f) end

local HEADER, MAC = 19, 8

local function frame_len(tvb, pinfo, offset)
  return tvb(offset, 2):uint() + 2
end

local function dissect_frame(tvb, pinfo, tree)
  local len = tvb:len()
  pinfo.cols.protocol = "YKT"
  local t = tree:add(ykt, tvb(), "YKT frame")
  t:add(fields["length"], tvb(0, 2))
  t:add(fields["magic"], tvb(2, 2))
  if tvb(2, 2):uint() ~= 0x594B then
    t:add_proto_expert_info(ef_magic)
    return len
  end
  t:add(fields["version"], tvb(4, 1))
  local msg = tvb(5, 1):uint()
  t:add(fields["type"], tvb(5, 1))
  local flags = tvb(6, 1):uint()
  local ft = t:add(fields["flags"], tvb(6, 1))
  local is_resp = bit.band(flags, 1) == 1
  ft:add(fields["flags.response"], tvb(6, 1), is_resp)
  ft:add(fields["flags.host"], tvb(6, 1), bit.band(flags, 2) == 2)
  t:add(fields["device"], tvb(7, 4))
  t:add(fields["seq"], tvb(11, 4))
  t:add(fields["corr"], tvb(15, 4))
  local body_len = len - HEADER - MAC
  local name = MESSAGE_TYPES[msg] or string.format("type 0x%02X", msg)
  local dir = (msg == 0x7F or is_resp) and "response" or "request"
  if msg == 0x7F then dir = "" end
  pinfo.cols.info:append(string.format("%s %s ", name, dir))
  if body_len < 0 then
    t:add_proto_expert_info(ef_short)
    return len
  end
  local body = t:add(ykt, tvb(HEADER, body_len), string.format("%s %s (%d bytes)", name, dir, body_len))
  local f = BODIES[msg * 2 + ((is_resp or msg == 0x7F) and 1 or 0)]
  if f then
    local rd = reader(tvb, HEADER, body_len, body)
    f(rd, body)
    if rd.short then
      body:add_proto_expert_info(ef_short)
    elseif rd:left() > 0 then
      body:add_proto_expert_info(ef_trailing)
    end
  end
  verify_mac(tvb, t, t:add(fields["mac"], tvb(len - MAC, MAC)), msg)
  return len
end

function ykt.dissector(tvb, pinfo, tree)
  dissect_tcp_pdus(tvb, tree, 2, frame_len, dissect_frame, true)
  return tvb:len()
end

local registered
function ykt.init()
  local tcp = DissectorTable.get("tcp.port")
  if registered then tcp:remove(registered, ykt) end
  registered = ykt.prefs.port
  tcp:add(registered, ykt)
end
