//! A fake QEMU for testing rig's supervisor (`Vm::boot` and teardown) without a VM.
//!
//! It is the test binary itself, run through a link named [`PROGRAM_NAME`] (see [`link`]), so
//! nothing extra is built or installed: the test binary's `main` calls [`main_if_invoked`]
//! first. rig runs it through [`rig::machine::vm_config::VmConfig::qemu_program`] with the argv
//! it would give QEMU, and the fake reads that argv as QEMU would: the serial console's
//! chardev (`-serial chardev:ID`, a unix socket QEMU serves and waits on), the monitor's
//! (`-mon chardev=ID,mode=control`, QMP), and the command shell's virtconsole (`-device
//! virtconsole,chardev=ID` over `socket,fd=N`, a descriptor it inherits).
//!
//! What it does is asked for on the kernel command line (`-append`), where a real guest takes
//! its orders too: `fake_qemu=MODE` (a [`Mode`]). It writes QEMU's own notices to stderr, serves
//! the console socket and QMP like QEMU (greeting, `qmp_capabilities`, `query-status`,
//! `query-version`, `quit` with its `SHUTDOWN` event; other commands get `CommandNotFound`),
//! and prints a canned kernel log on the console.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// The name the fake answers to; any other `argv[0]` runs the tests.
pub const PROGRAM_NAME: &str = "qemu-system-fake";

/// The kernel release the fake guest reports when ready.
pub const RELEASE: &str = "6.1.0-fake";

/// What QEMU says when it cannot start ([`Mode::Exit`]).
pub const STARTUP_ERROR: &str =
    "qemu-system-x86_64: -accel kvm: failed to initialize kvm: Permission denied";

/// The canned kernel log (serial lines end in CR LF).
const KERNEL_LOG: &str = "[    0.000000] Linux version 6.1.0-fake (fake@qemu) #1 SMP\r\n\
[    0.000000] Command line: console=ttyS0 panic=-1\r\n\
[    0.412345] Run /init as init process\r\n";

/// What the fake does, from `fake_qemu=MODE` on the kernel command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `exit`: says [`STARTUP_ERROR`] and exits 1 before opening any socket.
    Exit,
    /// `no-greeting`: accepts the QMP connection and never says anything on it.
    NoGreeting,
    /// `close-qmp`: accepts the QMP connection and closes it without a greeting.
    CloseQmp,
    /// `silent`: serves QMP; the console shows nothing at all; runs until killed.
    Silent,
    /// `hang`: serves QMP; prints the kernel log, then nothing; runs until killed.
    Hang,
    /// `init-failed`: the kernel log, then init's `RIG-INIT-FAILED …` marker.
    InitFailed,
    /// `panic`: the kernel log and a panic, a `SHUTDOWN` event (`guest-reset`, what a panic
    /// under `-no-reboot` makes), exit 0.
    Panic,
    /// `ready`: the kernel log and `RIG-READY` on both streams; exits on QMP `quit`.
    Ready,
    /// `ready-deaf`: like `ready`, and ignores SIGTERM (only SIGKILL ends it).
    ReadyDeaf,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Exit => "exit",
            Mode::NoGreeting => "no-greeting",
            Mode::CloseQmp => "close-qmp",
            Mode::Silent => "silent",
            Mode::Hang => "hang",
            Mode::InitFailed => "init-failed",
            Mode::Panic => "panic",
            Mode::Ready => "ready",
            Mode::ReadyDeaf => "ready-deaf",
        }
    }

    /// The kernel parameter that asks for this mode.
    pub fn param(self) -> String {
        format!("fake_qemu={}", self.name())
    }

    const ALL: [Mode; 9] = [
        Mode::Exit,
        Mode::NoGreeting,
        Mode::CloseQmp,
        Mode::Silent,
        Mode::Hang,
        Mode::InitFailed,
        Mode::Panic,
        Mode::Ready,
        Mode::ReadyDeaf,
    ];
}

/// A link named [`PROGRAM_NAME`] to this test binary, in `dir`: the program rig runs as QEMU.
pub fn link(dir: &Path) -> PathBuf {
    let program = dir.join(PROGRAM_NAME);
    std::os::unix::fs::symlink(std::env::current_exe().unwrap(), &program).unwrap();
    program
}

/// Runs the fake (and never returns) when this process was started as [`PROGRAM_NAME`].
pub fn main_if_invoked() {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if Path::new(&argv0).file_name() == Some(PROGRAM_NAME.as_ref()) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match run(&args) {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("{PROGRAM_NAME}: {e}");
                std::process::exit(2)
            }
        }
    }
}

/// What the fake takes from QEMU's argv.
struct Argv {
    console: PathBuf,
    qmp: PathBuf,
    shell_fd: i32,
    mode: Mode,
}

impl Argv {
    fn parse(args: &[String]) -> Result<Argv, String> {
        let mut chardevs: HashMap<String, HashMap<String, String>> = HashMap::new();
        let (mut serial, mut monitor, mut virtconsole, mut append) = (None, None, None, None);
        for pair in args.windows(2) {
            let (opt, value) = (pair[0].as_str(), pair[1].as_str());
            let props = || -> HashMap<String, String> {
                value
                    .split(',')
                    .skip(1)
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            };
            match opt {
                "-chardev" => {
                    let p = props();
                    let id = p.get("id").ok_or(format!("chardev without id: {value}"))?;
                    chardevs.insert(id.clone(), p);
                }
                "-serial" => serial = value.strip_prefix("chardev:").map(String::from),
                "-mon" if value.contains("mode=control") => monitor = props_of(value, "chardev"),
                "-device" if value.starts_with("virtconsole,") => {
                    virtconsole = props().get("chardev").cloned()
                }
                "-append" => append = Some(value.to_string()),
                _ => {}
            }
        }
        let chardev = |id: Option<String>, what: &str| {
            let id = id.ok_or(format!("no {what} in the argv"))?;
            chardevs
                .get(&id)
                .ok_or(format!("{what} names chardev {id}, which is not there"))
        };
        let path = |c: &HashMap<String, String>, what: &str| {
            c.get("path")
                .map(PathBuf::from)
                .ok_or(format!("the {what} chardev is no unix socket"))
        };
        let console = path(chardev(serial, "-serial")?, "serial")?;
        let qmp = path(chardev(monitor, "-mon")?, "monitor")?;
        let shell_fd = chardev(virtconsole, "virtconsole")?
            .get("fd")
            .and_then(|fd| fd.parse().ok())
            .ok_or("the virtconsole chardev has no fd")?;
        let append = append.ok_or("no -append")?;
        let mode = append
            .split(' ')
            .find_map(|p| p.strip_prefix("fake_qemu="))
            .ok_or("no fake_qemu=MODE on the kernel command line")?;
        let mode = Mode::ALL
            .into_iter()
            .find(|m| m.name() == mode)
            .ok_or(format!("unknown mode {mode}"))?;
        Ok(Argv {
            console,
            qmp,
            shell_fd,
            mode,
        })
    }
}

/// `key`'s value among the comma-separated `key=value` words of `value`.
fn props_of(value: &str, key: &str) -> Option<String> {
    value
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

fn run(args: &[String]) -> Result<(), String> {
    let argv = Argv::parse(args)?;
    let io = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| format!("{what}: {e}")
    };
    if argv.mode == Mode::Exit {
        eprintln!("{STARTUP_ERROR}");
        std::process::exit(1);
    }
    if argv.mode == Mode::ReadyDeaf {
        let ignored = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGTERM, ignored)
            .map_err(io("SIGTERM handler"))?;
    }
    // SAFETY: the descriptor is QEMU's end of rig's shell channel, inherited under the number
    // the argv names, and nothing else in this process owns or closes it.
    let mut shell = unsafe { <UnixStream as std::os::fd::FromRawFd>::from_raw_fd(argv.shell_fd) };
    // Like QEMU: the console's `wait=on` socket first (QEMU starts nothing before a client
    // connects), then the monitor's.
    let listener = UnixListener::bind(&argv.console).map_err(io("console socket"))?;
    eprintln!(
        "{PROGRAM_NAME}: -chardev socket,id=con0,path={}: info: QEMU waiting for connection on: \
         disconnected:unix:{},server=on",
        argv.console.display(),
        argv.console.display()
    );
    let (mut console, _) = listener.accept().map_err(io("console accept"))?;
    let qmp_listener = UnixListener::bind(&argv.qmp).map_err(io("QMP socket"))?;
    let (handshaken, greeted) = mpsc::channel();
    let mode = argv.mode;
    std::thread::spawn(move || serve_qmp(qmp_listener, mode, handshaken));

    let mut say = |text: &str| console.write_all(text.as_bytes()).map_err(io("console"));
    match mode {
        Mode::Silent | Mode::NoGreeting | Mode::CloseQmp => {}
        Mode::Hang => say(KERNEL_LOG)?,
        Mode::InitFailed => {
            say(KERNEL_LOG)?;
            say("RIG-INIT-FAILED cannot mount /proc\r\n")?;
        }
        Mode::Panic => {
            say(KERNEL_LOG)?;
            say("[    0.500000] Kernel panic - not syncing: fake panic\r\n")?;
            // The guest resets once rig listens to QMP; with -no-reboot QEMU then exits.
            let mut qmp: UnixStream = greeted.recv().map_err(|e| e.to_string())?;
            send(&mut qmp, &shutdown_event(true, "guest-reset")).map_err(io("QMP"))?;
            return Ok(());
        }
        Mode::Ready | Mode::ReadyDeaf => {
            say(KERNEL_LOG)?;
            say(&format!("RIG-READY {RELEASE}\r\n"))?;
            shell
                .write_all(format!("RIG-READY {RELEASE}\n").as_bytes())
                .map_err(io("shell"))?;
        }
        Mode::Exit => unreachable!("exited above"),
    }
    // QEMU runs the guest until it is told to quit or killed.
    loop {
        std::thread::park();
    }
}

/// Serves QMP on the first connection, as [`Mode`] says; sends the connection on `handshaken`
/// once capabilities are negotiated.
fn serve_qmp(listener: UnixListener, mode: Mode, handshaken: mpsc::Sender<UnixStream>) {
    let Ok((mut stream, _)) = listener.accept() else {
        return;
    };
    match mode {
        Mode::CloseQmp => return,
        Mode::NoGreeting => {
            // Held open, never written to.
            loop {
                std::thread::park();
            }
        }
        _ => {}
    }
    let greeting = json!({"QMP": {
        "version": {"qemu": {"micro": 0, "minor": 2, "major": 8}, "package": ""},
        "capabilities": ["oob"]}});
    if send(&mut stream, &greeting).is_err() {
        return;
    }
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else { return };
        let Ok(request) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let command = request["execute"].as_str().unwrap_or_default();
        let mut reply = match command {
            "qmp_capabilities" | "quit" => json!({"return": {}}),
            "query-status" => {
                json!({"return": {"status": "running", "running": true, "singlestep": false}})
            }
            "query-version" => json!({"return": greeting["QMP"]["version"]}),
            _ => json!({"error": {"class": "CommandNotFound",
                "desc": format!("The command {command} has not been found")}}),
        };
        if let Some(id) = request.get("id") {
            reply["id"] = id.clone();
        }
        if send(&mut stream, &reply).is_err() {
            return;
        }
        match command {
            "qmp_capabilities" => {
                if let Ok(s) = stream.try_clone() {
                    let _ = handshaken.send(s);
                }
            }
            "quit" => {
                let _ = send(&mut stream, &shutdown_event(false, "host-qmp-quit"));
                std::process::exit(0);
            }
            _ => {}
        }
    }
}

fn shutdown_event(guest: bool, reason: &str) -> Value {
    json!({"event": "SHUTDOWN", "data": {"guest": guest, "reason": reason},
        "timestamp": {"seconds": 0, "microseconds": 0}})
}

fn send(stream: &mut UnixStream, msg: &Value) -> std::io::Result<()> {
    stream.write_all(format!("{msg}\r\n").as_bytes())
}
