//! The pickle stream of numpy object arrays (protocols 0 to 5), read without executing it.
//!
//! A small pickle machine: it runs the opcodes into an arena of objects and never imports or
//! calls anything. `GLOBAL`, `REDUCE` and `BUILD` are recorded as data (which callable, which
//! arguments, which state) for the caller to interpret (numpy arrays and scalars, see
//! [`super::npy`]), so a hostile file cannot run code. Byte strings stay spans of the input,
//! not copies: that is what lets a multi-GB file of JPEGs be read in place from a memory map
//! (skipping a payload touches none of its pages).
//!
//! Short strings (dict keys, ids) are also copied out as they are read, so the caller may drop
//! the pages of a memory map behind the parse position (see [`Pickle::parse_releasing`]) and
//! still read every key afterwards: a multi-GB file is parsed with a small resident set.
//!
//! [`write`] has the few pieces a writer of Python 2 style (protocol 2) pickles needs.

use rustc_hash::FxHashMap;

/// Where a byte string lies in the input: absolute offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub len: u64,
}

impl Span {
    pub fn end(&self) -> u64 {
        // A span the reader took from its input: the sum is at most the input's length.
        self.start.saturating_add(self.len)
    }
}

/// A value on the machine's stack, in the memo, or inside a container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Python 2 `str` or Python 3 `bytes`, stored verbatim in the input.
    Bytes(Span),
    /// Unicode text, stored as UTF-8 in the input.
    Text(Span),
    /// An object of the arena (containers, calls, owned strings).
    Obj(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Entries in stream order (a later equal key does not replace an earlier one here).
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    /// A `module.name` reference (GLOBAL, STACK_GLOBAL).
    Global(Box<Global>),
    /// `callable(*args)` (REDUCE, NEWOBJ), with the state BUILD gave it.
    Call(Box<Call>),
    /// Bytes that are not a verbatim span of the input (Python 3's protocol-2 `bytes`).
    OwnedBytes(Vec<u8>),
    /// An integer outside i64 (LONG1, LONG4): little-endian two's complement.
    BigInt(Vec<u8>),
}

/// Boxed so that the common objects (containers) stay small in the arena.
#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    pub module: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub callable: Value,
    pub args: Value,
    pub state: Option<Value>,
}

/// Why the stream could not be read, and where (absolute byte offset of the opcode or
/// argument at fault).
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError {
    pub offset: u64,
    pub message: String,
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "byte offset {}: {}", self.offset, self.message)
    }
}

/// A pickle that has been run: the arena and the root value.
#[derive(Debug)]
pub struct Pickle<'a> {
    data: &'a [u8],
    /// Copies of the short strings, and (start offset, position in `small`) of each, by start.
    small: Vec<u8>,
    small_index: Vec<(u64, u32)>,
    objects: Vec<Object>,
    /// Offset of the opcode that made each object, for messages.
    origins: Vec<u64>,
    pub root: Value,
    /// Offset just past the STOP opcode.
    pub end: u64,
}

/// Deepest MARK nesting accepted; real data nests a handful deep.
const MAX_MARKS: usize = 10_000;
/// Strings up to this long are copied as they are parsed (keys, ids); longer ones stay spans.
const SMALL: u64 = 64;
/// How often (bytes parsed) the release hook is called.
const RELEASE_EVERY: usize = 32 << 20;

impl<'a> Pickle<'a> {
    /// Run the pickle that starts at `start` in `data` (offsets in errors and spans are
    /// relative to `data`, i.e. file offsets when `data` is the whole file).
    pub fn parse(data: &'a [u8], start: usize) -> Result<Pickle<'a>, PickleError> {
        Machine::new(data, start, None).run()
    }

    /// Like [`Pickle::parse`], calling `release(upto)` now and then with an offset below which
    /// the parse will not read `data` again (the caller can drop those pages of a map). Reading
    /// long strings afterwards touches `data` again; short ones come from copies.
    pub fn parse_releasing(data: &'a [u8], start: usize, release: &dyn Fn(usize)) -> Result<Pickle<'a>, PickleError> {
        Machine::new(data, start, Some(release)).run()
    }

    pub fn object(&self, v: Value) -> Option<&Object> {
        match v {
            Value::Obj(i) => self.objects.get(i as usize),
            _ => None,
        }
    }

    /// Offset of the opcode that made `v`'s object (None for plain values).
    pub fn origin(&self, v: Value) -> Option<u64> {
        match v {
            Value::Obj(i) => self.origins.get(i as usize).copied(),
            _ => None,
        }
    }

    /// The bytes of a byte string or text (short ones from their copy, long ones from the input).
    pub fn bytes(&self, v: Value) -> Option<&[u8]> {
        match v {
            Value::Bytes(s) | Value::Text(s) if s.len <= SMALL => {
                let k = self.small_index.binary_search_by_key(&s.start, |e| e.0).ok()?;
                let at = self.small_index.get(k)?.1 as usize;
                self.small.get(at..at.checked_add(usize::try_from(s.len).ok()?)?)
            }
            Value::Bytes(s) | Value::Text(s) => self.data.get(s.start as usize..s.end() as usize),
            _ => None,
        }
    }

    /// Like [`Pickle::bytes`], also for owned bytes (borrowed from the arena).
    pub fn any_bytes(&self, v: Value) -> Option<&[u8]> {
        match (v, self.object(v)) {
            (Value::Bytes(_) | Value::Text(_), _) => self.bytes(v),
            (_, Some(Object::OwnedBytes(b))) => Some(b),
            _ => None,
        }
    }

    /// Items of a list or tuple.
    pub fn items(&self, v: Value) -> Option<&[Value]> {
        match self.object(v)? {
            Object::List(x) | Object::Tuple(x) => Some(x),
            _ => None,
        }
    }

    pub fn dict(&self, v: Value) -> Option<&[(Value, Value)]> {
        match self.object(v)? {
            Object::Dict(x) => Some(x),
            _ => None,
        }
    }

    /// The value of the first entry of dict `v` whose key is the string `key` (text or bytes).
    pub fn get(&self, v: Value, key: &str) -> Option<Value> {
        self.dict(v)?.iter().find(|(k, _)| self.bytes(*k) == Some(key.as_bytes())).map(|&(_, x)| x)
    }

    /// `(module, name)` of a global reference.
    pub fn global(&self, v: Value) -> Option<(&str, &str)> {
        match self.object(v)? {
            Object::Global(g) => Some((&g.module, &g.name)),
            _ => None,
        }
    }

    /// A call whose callable is the global `module.name` for one of `modules`: (args, state).
    pub fn call_of(&self, v: Value, modules: &[&str], name: &str) -> Option<(Value, Option<Value>)> {
        match self.object(v)? {
            Object::Call(c) => {
                let (m, n) = self.global(c.callable)?;
                (n == name && modules.contains(&m)).then_some((c.args, c.state))
            }
            _ => None,
        }
    }

    /// A short description of a value's type, for messages.
    pub fn type_name(&self, v: Value) -> String {
        match v {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Text(_) => "str".into(),
            Value::Obj(_) => match self.object(v) {
                Some(Object::List(_)) => "list".into(),
                Some(Object::Tuple(_)) => "tuple".into(),
                Some(Object::Dict(_)) => "dict".into(),
                Some(Object::Set(_)) => "set".into(),
                Some(Object::Global(g)) => format!("{}.{}", g.module, g.name),
                Some(Object::Call(c)) => match self.global(c.callable) {
                    Some((m, n)) => format!("{m}.{n}(...)"),
                    None => "call".into(),
                },
                Some(Object::OwnedBytes(_)) => "bytes".into(),
                Some(Object::BigInt(_)) => "int".into(),
                None => "?".into(),
            },
        }
    }
}

struct Machine<'a, 'r> {
    data: &'a [u8],
    small: Vec<u8>,
    small_index: Vec<(u64, u32)>,
    release: Option<&'r dyn Fn(usize)>,
    released: usize,
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: Memo,
    objects: Vec<Object>,
    origins: Vec<u64>,
    /// Offset of the opcode being run.
    at: usize,
}

type Step<T> = Result<T, PickleError>;

impl<'a, 'r> Machine<'a, 'r> {
    fn new(data: &'a [u8], start: usize, release: Option<&'r dyn Fn(usize)>) -> Self {
        Machine {
            data,
            small: Vec::new(),
            small_index: Vec::new(),
            release,
            released: start,
            pos: start,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Memo::default(),
            objects: Vec::new(),
            origins: Vec::new(),
            at: start,
        }
    }

    fn err<T>(&self, message: impl Into<String>) -> Step<T> {
        Err(PickleError { offset: self.at as u64, message: message.into() })
    }

    fn take(&mut self, n: usize, what: &str) -> Step<&'a [u8]> {
        let data = self.data;
        let end = self.pos.checked_add(n);
        match end.zip(end.and_then(|end| data.get(self.pos..end))) {
            Some((end, s)) => {
                self.pos = end;
                Ok(s)
            }
            None => Err(PickleError {
                offset: self.pos as u64,
                message: format!(
                    "truncated: {what} needs {n} bytes but the data ends at byte offset {} ({} bytes short)",
                    self.data.len(),
                    (self.pos as u128).saturating_add(n as u128).saturating_sub(self.data.len() as u128)
                ),
            }),
        }
    }

    /// A payload of `n` bytes, skipped (not read): its span.
    fn span(&mut self, n: u64, what: &str) -> Step<Span> {
        let n_usize = usize::try_from(n).or_else(|_| self.err(format!("{what} of {n} bytes is too large")))?;
        let start = self.pos as u64;
        let bytes = self.take(n_usize, what)?;
        if n <= SMALL {
            self.small_index.push((start, self.small.len() as u32));
            self.small.extend_from_slice(bytes);
        }
        Ok(Span { start, len: n })
    }

    fn u8(&mut self) -> Step<u8> {
        Ok(u8::from_le_bytes(crate::io::byte_array(self.take(1, "an opcode argument")?)))
    }
    fn u16(&mut self) -> Step<u16> {
        Ok(u16::from_le_bytes(crate::io::byte_array(self.take(2, "an opcode argument")?)))
    }
    fn u32(&mut self) -> Step<u32> {
        Ok(u32::from_le_bytes(crate::io::byte_array(self.take(4, "an opcode argument")?)))
    }
    fn i32(&mut self) -> Step<i32> {
        Ok(i32::from_le_bytes(crate::io::byte_array(self.take(4, "an opcode argument")?)))
    }
    fn u64(&mut self) -> Step<u64> {
        Ok(u64::from_le_bytes(crate::io::byte_array(self.take(8, "an opcode argument")?)))
    }

    /// A newline-terminated text argument (protocol 0 forms), without the newline.
    fn line(&mut self) -> Step<&'a str> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let Some(n) = rest.iter().take(4096).position(|&b| b == b'\n') else {
            return self.err("truncated or malformed: a text argument has no end of line");
        };
        // n < rest.len(): the position stays within the data.
        self.pos = self.pos.saturating_add(n).saturating_add(1);
        std::str::from_utf8(rest.get(..n).unwrap_or_default()).or_else(|_| self.err("a text argument is not UTF-8"))
    }

    fn new_object(&mut self, o: Object) -> Value {
        self.objects.push(o);
        self.origins.push(self.at as u64);
        Value::Obj(self.objects.len().saturating_sub(1) as u32)
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn pop(&mut self) -> Step<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.err("the stack is empty (malformed pickle)");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.err("the stack is empty (malformed pickle)"),
        }
    }

    fn top(&self) -> Step<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.err("the stack is empty (malformed pickle)");
        }
        match self.stack.last() {
            Some(v) => Ok(*v),
            None => self.err("the stack is empty (malformed pickle)"),
        }
    }

    /// The values pushed since the last MARK, which is removed.
    fn pop_mark(&mut self) -> Step<Vec<Value>> {
        match self.marks.pop() {
            Some(m) => Ok(self.stack.split_off(m)),
            None => self.err("no MARK on the stack (malformed pickle)"),
        }
    }

    fn memo_get(&self, id: u32) -> Step<Value> {
        match self.memo.get(id) {
            Some(v) => Ok(v),
            None => self.err(format!("memo entry {id} was never stored (malformed pickle)")),
        }
    }

    fn container_mut(&mut self, v: Value) -> Step<&mut Object> {
        let at = self.at as u64;
        let not_container =
            || PickleError { offset: at, message: "the target of an append or set-item is not a container".into() };
        match v {
            Value::Obj(i) => self.objects.get_mut(i as usize).ok_or_else(not_container),
            _ => Err(not_container()),
        }
    }

    fn append(&mut self, target: Value, items: Vec<Value>) -> Step<()> {
        match self.container_mut(target)? {
            Object::List(l) | Object::Set(l) => {
                l.extend(items);
                Ok(())
            }
            _ => self.err("APPEND/ADDITEMS on something that is not a list or set"),
        }
    }

    fn set_items(&mut self, target: Value, kv: Vec<Value>) -> Step<()> {
        if !kv.len().is_multiple_of(2) {
            return self.err("SETITEMS with an odd number of keys and values");
        }
        let pairs = kv.chunks_exact(2).filter_map(|p| match *p {
            [k, v] => Some((k, v)),
            _ => None,
        });
        match self.container_mut(target)? {
            Object::Dict(d) => {
                d.extend(pairs);
                Ok(())
            }
            _ => self.err("SETITEM on something that is not a dict"),
        }
    }

    fn int_from_le(&self, bytes: &[u8]) -> Value {
        if bytes.is_empty() {
            return Value::Int(0);
        }
        if bytes.len() <= 8 {
            let neg = bytes.last().is_some_and(|&b| b & 0x80 != 0);
            let mut buf = if neg { [0xffu8; 8] } else { [0u8; 8] };
            buf.iter_mut().zip(bytes).for_each(|(d, &b)| *d = b);
            return Value::Int(i64::from_le_bytes(buf));
        }
        Value::Obj(u32::MAX) // replaced by the caller with a BigInt object
    }

    fn long_bytes(&mut self, bytes: &'a [u8]) -> Value {
        match self.int_from_le(bytes) {
            Value::Obj(_) => self.new_object(Object::BigInt(bytes.to_vec())),
            v => v,
        }
    }

    fn call(&mut self, callable: Value, args: Value) -> Value {
        // Python 3 writes `bytes` in protocol 2 as _codecs.encode(text, 'latin1').
        if let (Some(("_codecs", "encode")), Some(Object::Tuple(a))) =
            (self.global_of(callable), self.objects.get(obj_index(args)))
        {
            if let [Value::Text(s), Value::Text(enc)] = a[..] {
                let (text, enc) = (span_bytes(self.data, s), span_bytes(self.data, enc));
                if enc == b"latin1" || enc == b"latin-1" {
                    if let Ok(t) = std::str::from_utf8(text) {
                        if t.chars().all(|c| (c as u32) < 256) {
                            return self.new_object(Object::OwnedBytes(t.chars().map(|c| c as u8).collect()));
                        }
                    }
                }
            }
        }
        self.new_object(Object::Call(Box::new(Call { callable, args, state: None })))
    }

    fn global_of(&self, v: Value) -> Option<(&str, &str)> {
        match self.objects.get(obj_index(v))? {
            Object::Global(g) => Some((&g.module, &g.name)),
            _ => None,
        }
    }

    fn run(mut self) -> Step<Pickle<'a>> {
        loop {
            self.at = self.pos;
            if let Some(release) = self.release {
                if self.pos.saturating_sub(self.released) >= RELEASE_EVERY {
                    release(self.pos);
                    self.released = self.pos;
                }
            }
            let op = match self.data.get(self.pos) {
                Some(&b) => b,
                None => {
                    return self.err(format!(
                        "truncated: the pickle ends at byte offset {} without its STOP opcode",
                        self.data.len()
                    ))
                }
            };
            self.pos = self.pos.saturating_add(1);
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return self.err(format!("pickle protocol {proto} is not supported (0 to 5 are)"));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint only
                }
                b'.' => {
                    let root = self.pop()?;
                    return Ok(Pickle {
                        data: self.data,
                        small: self.small,
                        small_index: self.small_index,
                        objects: self.objects,
                        origins: self.origins,
                        root,
                        end: self.pos as u64,
                    });
                }
                b'(' => {
                    if self.marks.len() >= MAX_MARKS {
                        return self.err("MARKs nest too deep");
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?;
                    self.push(v);
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64))
                }
                b'J' => {
                    let v = self.i32()?;
                    self.push(Value::Int(v as i64))
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n, "LONG1")?;
                    let v = self.long_bytes(b);
                    self.push(v)
                }
                0x8b => {
                    let n = self.i32()?;
                    if n < 0 {
                        return self.err("LONG4 with a negative length");
                    }
                    let b = self.take(n as usize, "LONG4")?;
                    let v = self.long_bytes(b);
                    self.push(v)
                }
                b'I' => {
                    let line = self.line()?;
                    let v = match line {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        s => match s.trim().parse::<i64>() {
                            Ok(i) => Value::Int(i),
                            Err(_) => return self.err(format!("INT argument {s:?} is not an integer")),
                        },
                    };
                    self.push(v)
                }
                b'L' => {
                    let line = self.line()?;
                    match line.trim_end_matches('L').parse::<i64>() {
                        Ok(i) => self.push(Value::Int(i)),
                        Err(_) => return self.err(format!("LONG argument {line:?} is not an integer within 64 bits")),
                    }
                }
                b'F' => {
                    let line = self.line()?;
                    match line.trim().parse::<f64>() {
                        Ok(f) => self.push(Value::Float(f)),
                        Err(_) => return self.err(format!("FLOAT argument {line:?} is not a number")),
                    }
                }
                b'G' => {
                    let b = self.take(8, "BINFLOAT")?;
                    self.push(Value::Float(f64::from_be_bytes(crate::io::byte_array(b))))
                }
                b'U' | b'C' => {
                    let n = self.u8()? as u64;
                    let s = self.span(n, "a short byte string")?;
                    self.push(Value::Bytes(s))
                }
                b'T' => {
                    let n = self.i32()?;
                    if n < 0 {
                        return self.err("BINSTRING with a negative length");
                    }
                    let s = self.span(n as u64, "a byte string")?;
                    self.push(Value::Bytes(s))
                }
                b'B' => {
                    let n = self.u32()? as u64;
                    let s = self.span(n, "a byte string")?;
                    self.push(Value::Bytes(s))
                }
                0x8e | 0x96 => {
                    let n = self.u64()?;
                    let s = self.span(n, "a byte string")?;
                    self.push(Value::Bytes(s))
                }
                0x8c => {
                    let n = self.u8()? as u64;
                    let v = self.text(n)?;
                    self.push(v)
                }
                b'X' => {
                    let n = self.u32()? as u64;
                    let v = self.text(n)?;
                    self.push(v)
                }
                0x8d => {
                    let n = self.u64()?;
                    let v = self.text(n)?;
                    self.push(v)
                }
                b']' => {
                    let v = self.new_object(Object::List(Vec::new()));
                    self.push(v)
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let v = self.new_object(Object::List(items));
                    self.push(v)
                }
                b'a' => {
                    let item = self.pop()?;
                    let target = self.top()?;
                    self.append(target, vec![item])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?;
                    self.append(target, items)?;
                }
                b')' => {
                    let v = self.new_object(Object::Tuple(Vec::new()));
                    self.push(v)
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let v = self.new_object(Object::Tuple(items));
                    self.push(v)
                }
                0x85..=0x87 => {
                    let n = usize::from(op).saturating_sub(0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let v = self.new_object(Object::Tuple(items));
                    self.push(v)
                }
                b'}' => {
                    let v = self.new_object(Object::Dict(Vec::new()));
                    self.push(v)
                }
                b'd' => {
                    let kv = self.pop_mark()?;
                    let v = self.new_object(Object::Dict(Vec::new()));
                    self.set_items(v, kv)?;
                    self.push(v)
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let target = self.top()?;
                    self.set_items(target, vec![key, value])?;
                }
                b'u' => {
                    let kv = self.pop_mark()?;
                    let target = self.top()?;
                    self.set_items(target, kv)?;
                }
                0x8f => {
                    let v = self.new_object(Object::Set(Vec::new()));
                    self.push(v)
                }
                0x90 => {
                    let items = self.pop_mark()?;
                    let target = self.top()?;
                    self.append(target, items)?;
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    let v = self.new_object(Object::Set(items));
                    self.push(v)
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    let v = self.new_object(Object::Global(Box::new(Global { module, name })));
                    self.push(v)
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let text = |v: Value| match v {
                        Value::Text(s) => std::str::from_utf8(span_bytes(self.data, s))
                            .ok()
                            .map(str::to_string),
                        _ => None,
                    };
                    match (text(module), text(name)) {
                        (Some(module), Some(name)) => {
                            let v = self.new_object(Object::Global(Box::new(Global { module, name })));
                            self.push(v)
                        }
                        _ => return self.err("STACK_GLOBAL needs two strings"),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.call(callable, args);
                    self.push(v)
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.new_object(Object::Call(Box::new(Call { callable: cls, args, state: None })));
                    self.push(v)
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.new_object(Object::Call(Box::new(Call { callable: cls, args, state: None })));
                    self.push(v)
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    match self.container_mut(target) {
                        Ok(Object::Call(c)) => c.state = Some(state),
                        _ => return self.err("BUILD on something that is not an object made by REDUCE/NEWOBJ"),
                    }
                }
                b'p' => {
                    let line = self.line()?;
                    let id = line.trim().parse::<u32>().or_else(|_| self.err(format!("PUT argument {line:?}")))?;
                    let v = self.top()?;
                    self.memo.put(id, v);
                }
                b'q' => {
                    let id = self.u8()? as u32;
                    let v = self.top()?;
                    self.memo.put(id, v);
                }
                b'r' => {
                    let id = self.u32()?;
                    let v = self.top()?;
                    self.memo.put(id, v);
                }
                0x94 => {
                    let id = self.memo.count as u32;
                    let v = self.top()?;
                    self.memo.put(id, v);
                }
                b'g' => {
                    let line = self.line()?;
                    let id = line.trim().parse::<u32>().or_else(|_| self.err(format!("GET argument {line:?}")))?;
                    let v = self.memo_get(id)?;
                    self.push(v)
                }
                b'h' => {
                    let id = self.u8()? as u32;
                    let v = self.memo_get(id)?;
                    self.push(v)
                }
                b'j' => {
                    let id = self.u32()?;
                    let v = self.memo_get(id)?;
                    self.push(v)
                }
                b'S' | b'V' => return self.err("protocol-0 text strings are not supported (numpy writes protocol 2 or later)"),
                b'P' | b'Q' => return self.err("persistent ids are not supported"),
                0x82..=0x84 => return self.err("extension-registry opcodes are not supported"),
                b'i' | b'o' => return self.err("old-style class instances (INST/OBJ) are not supported"),
                0x97 | 0x98 => return self.err("out-of-band buffers (protocol 5) are not supported"),
                _ => return self.err(format!("unknown opcode 0x{op:02x}: not a pickle, or a corrupt one")),
            }
        }
    }

    fn text(&mut self, n: u64) -> Step<Value> {
        let s = self.span(n, "a text string")?;
        if std::str::from_utf8(span_bytes(self.data, s)).is_err() {
            return self.err("a text string is not valid UTF-8");
        }
        Ok(Value::Text(s))
    }
}

/// The input bytes of `s`, a span the parser took from `data` (none were it not inside).
fn span_bytes(data: &[u8], s: Span) -> &[u8] {
    data.get(s.start as usize..s.end() as usize).unwrap_or_default()
}

/// The memo: ids are dense in practice (0, 1, 2, ...), so a vector; a far id from a hostile
/// file goes to a map instead of growing the vector.
#[derive(Default)]
struct Memo {
    dense: Vec<Option<Value>>,
    sparse: FxHashMap<u32, Value>,
    /// Entries stored (MEMOIZE's next id).
    count: usize,
}

impl Memo {
    fn put(&mut self, id: u32, v: Value) {
        let i = id as usize;
        let new = if let Some(slot) = self.dense.get_mut(i) {
            slot.replace(v).is_none()
        } else if i <= self.dense.len().saturating_add(4096) {
            self.dense.resize(i, None);
            self.dense.push(Some(v));
            true
        } else {
            self.sparse.insert(id, v).is_none()
        };
        self.count = self.count.saturating_add(usize::from(new));
    }

    fn get(&self, id: u32) -> Option<Value> {
        self.dense.get(id as usize).copied().flatten().or_else(|| self.sparse.get(&id).copied())
    }
}

fn obj_index(v: Value) -> usize {
    match v {
        Value::Obj(i) => i as usize,
        _ => usize::MAX,
    }
}

/// Pieces of a protocol-2 pickle as Python 2's cPickle writes them (used by the DVBPR writer).
pub mod write {
    use std::io::{self, Write};

    pub const PROTO: u8 = 0x80;
    pub const STOP: u8 = b'.';
    pub const MARK: u8 = b'(';
    pub const NONE: u8 = b'N';
    pub const NEWFALSE: u8 = 0x89;
    pub const EMPTY_LIST: u8 = b']';
    pub const APPEND: u8 = b'a';
    pub const APPENDS: u8 = b'e';
    pub const EMPTY_DICT: u8 = b'}';
    pub const SETITEM: u8 = b's';
    pub const SETITEMS: u8 = b'u';
    pub const TUPLE: u8 = b't';
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE3: u8 = 0x87;
    pub const REDUCE: u8 = b'R';
    pub const BUILD: u8 = b'b';

    /// cPickle batches APPENDS / SETITEMS by this many items.
    pub const BATCH: usize = 1000;

    /// An int the way protocol 2 writes it (BININT1, BININT2, BININT, LONG1).
    pub fn int(w: &mut impl Write, v: i64) -> io::Result<()> {
        if (0..256).contains(&v) {
            w.write_all(&[b'K', v as u8])
        } else if (0..65536).contains(&v) {
            w.write_all(b"M")?;
            w.write_all(&(v as u16).to_le_bytes())
        } else if i32::try_from(v).is_ok() {
            w.write_all(b"J")?;
            w.write_all(&(v as i32).to_le_bytes())
        } else {
            let b = v.to_le_bytes();
            // Shortest two's complement that keeps the sign.
            let mut n = 8usize;
            // Drop the top byte while it only repeats the sign of the byte below it.
            while n > 1 && matches!(b.get(n.saturating_sub(2)..n), Some(&[lo, hi]) if (hi == 0 && lo & 0x80 == 0) || (hi == 0xff && lo & 0x80 != 0)) {
                n = n.saturating_sub(1);
            }
            w.write_all(&[0x8a, n as u8])?;
            w.write_all(b.get(..n).unwrap_or(&b))
        }
    }

    /// A Python 2 `str` (SHORT_BINSTRING / BINSTRING) header; the payload follows.
    pub fn str_header(w: &mut impl Write, len: usize) -> io::Result<()> {
        if len < 256 {
            w.write_all(&[b'U', len as u8])
        } else {
            let n = i32::try_from(len).map_err(|_| io::Error::other("a string over 2 GiB cannot be pickled in protocol 2"))?;
            w.write_all(b"T")?;
            w.write_all(&n.to_le_bytes())
        }
    }

    pub fn str(w: &mut impl Write, s: &[u8]) -> io::Result<()> {
        str_header(w, s.len())?;
        w.write_all(s)
    }

    pub fn global(w: &mut impl Write, module: &str, name: &str) -> io::Result<()> {
        write!(w, "c{module}\n{name}\n")
    }

    /// BINPUT / LONG_BINPUT.
    pub fn put(w: &mut impl Write, id: u32) -> io::Result<()> {
        if id < 256 {
            w.write_all(&[b'q', id as u8])
        } else {
            w.write_all(b"r")?;
            w.write_all(&id.to_le_bytes())
        }
    }

    /// BINGET / LONG_BINGET.
    pub fn get(w: &mut impl Write, id: u32) -> io::Result<()> {
        if id < 256 {
            w.write_all(&[b'h', id as u8])
        } else {
            w.write_all(b"j")?;
            w.write_all(&id.to_le_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<(Vec<u8>, Value), PickleError> {
        Pickle::parse(bytes, 0).map(|p| (bytes.to_vec(), p.root))
    }

    #[test]
    fn protocol2_dict_of_lists_with_memo() {
        // {'productid': 5, 'k': [1, 'ab']} followed by a BINGET of the key, py2 style.
        let mut b = vec![0x80, 2, b'}', b'q', 0, b'(', b'U', 9];
        b.extend_from_slice(b"productid");
        b.extend_from_slice(&[b'q', 1, b'K', 5, b'U', 1, b'k', b']', b'q', 2, b'(', b'K', 1, b'U', 2, b'a', b'b', b'e', b'u']);
        b.extend_from_slice(&[b'h', 1, 0x86, b'.']); // (dict, 'productid') tuple
        let p = Pickle::parse(&b, 0).unwrap();
        let items = p.items(p.root).unwrap();
        assert_eq!(items.len(), 2);
        let d = items[0];
        assert_eq!(p.get(d, "productid"), Some(Value::Int(5)));
        let l = p.get(d, "k").unwrap();
        assert_eq!(p.items(l).unwrap()[0], Value::Int(1));
        assert_eq!(p.bytes(p.items(l).unwrap()[1]), Some(&b"ab"[..]));
        assert_eq!(p.bytes(items[1]), Some(&b"productid"[..]));
        assert_eq!(p.end as usize, b.len());
    }

    #[test]
    fn ints_of_every_width() {
        for v in [0i64, 255, 256, 65535, 65536, -1, -129, i32::MAX as i64, i32::MAX as i64 + 1, i64::MIN, i64::MAX] {
            let mut b = vec![0x80, 2];
            write::int(&mut b, v).unwrap();
            b.push(b'.');
            assert_eq!(Pickle::parse(&b, 0).unwrap().root, Value::Int(v), "{v}");
        }
        let p = Pickle::parse(b"I01\n.", 0).unwrap();
        assert_eq!(p.root, Value::Bool(true));
        assert_eq!(Pickle::parse(b"L-12L\n.", 0).unwrap().root, Value::Int(-12));
        let big = [0x80, 2, 0x8a, 9, 1, 0, 0, 0, 0, 0, 0, 0, 1, b'.'];
        let p = Pickle::parse(&big, 0).unwrap();
        assert!(matches!(p.object(p.root), Some(Object::BigInt(b)) if b.len() == 9));
    }

    #[test]
    fn payloads_are_spans_not_copies() {
        let mut b = vec![0x80, 2, b'T'];
        b.extend_from_slice(&(3000i32).to_le_bytes());
        b.extend(std::iter::repeat_n(7u8, 3000));
        b.push(b'.');
        let p = Pickle::parse(&b, 0).unwrap();
        assert_eq!(p.root, Value::Bytes(Span { start: 7, len: 3000 }));
    }

    #[test]
    fn truncation_and_garbage_are_located() {
        let mut b = vec![0x80, 2, b'T'];
        b.extend_from_slice(&(3000i32).to_le_bytes());
        b.extend(std::iter::repeat_n(7u8, 100));
        let e = run(&b).unwrap_err();
        assert_eq!(e.offset, 7);
        assert!(e.message.contains("needs 3000 bytes") && e.message.contains("ends at byte offset 107"), "{e}");
        let e = run(&[0x80, 2, b']']).unwrap_err();
        assert!(e.message.contains("without its STOP"), "{e}");
        let e = run(&[0x80, 2, 0xff]).unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.message.contains("unknown opcode 0xff"), "{e}");
        let e = run(&[0x80, 2, b'h', 3, b'.']).unwrap_err();
        assert!(e.message.contains("memo entry 3"), "{e}");
        let e = run(&[0x80, 2, b'.']).unwrap_err();
        assert!(e.message.contains("stack is empty"), "{e}");
        let e = run(&[0x80, 2, b'K', 0, b'K', 1, b'K', 2, b's', b'.']).unwrap_err();
        assert!(e.message.contains("not a container") && e.offset == 8, "{e}");
    }

    #[test]
    fn globals_and_calls_are_data() {
        let mut b = vec![0x80, 2];
        write::global(&mut b, "os", "system").unwrap();
        write::str(&mut b, b"rm -rf /").unwrap();
        b.extend_from_slice(&[write::TUPLE1, write::REDUCE, write::STOP]);
        let p = Pickle::parse(&b, 0).unwrap();
        assert_eq!(p.type_name(p.root), "os.system(...)");
        assert!(p.call_of(p.root, &["os"], "system").is_some());
    }

    #[test]
    fn python3_protocol2_bytes_via_codecs_encode() {
        // What Python 3's pickle.dumps(b'\xff\x00', protocol=2) writes.
        let b = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00\xc3\xbf\x00q\x01X\x06\x00\x00\x00latin1q\x02\x86q\x03Rq\x04.";
        let p = Pickle::parse(b, 0).unwrap();
        assert_eq!(p.any_bytes(p.root), Some(&[0xffu8, 0x00][..]));
    }
}
