//! Unit tests of the QEMU argv and kernel cmdline builders.
use super::*;

/// A board's config with a kernel, an initrd and a command line: the tests' fixture.
pub(crate) fn cfg(board: Board) -> QemuConfig {
    let mut c = QemuConfig::new(
        board,
        Accel::Tcg,
        "/t/con.sock".into(),
        "/t/qmp.sock".into(),
    );
    c.kernel = Some("/k/Image".into());
    c.initrd = Some("/k/initrd".into());
    c.cmdline = "console=ttyAMA0".into();
    c
}

fn has_pair(a: &[String], flag: &str, value: &str) -> bool {
    a.windows(2).any(|w| w[0] == flag && w[1] == value)
}

#[test]
fn arm64_virt_argv() {
    let a = argv(&cfg(Board::Arm64Virt));
    assert_eq!(a[0], "qemu-system-aarch64");
    assert!(has_pair(&a, "-machine", "virt"));
    assert!(has_pair(&a, "-cpu", "cortex-a57"));
    assert!(has_pair(&a, "-accel", "tcg,thread=multi"));
    assert!(has_pair(&a, "-m", "512M,slots=4,maxmem=4096M"));
    assert!(has_pair(&a, "-kernel", "/k/Image"));
    assert!(has_pair(&a, "-initrd", "/k/initrd"));
    assert!(has_pair(&a, "-append", "console=ttyAMA0"));
    assert!(a.contains(&"-no-reboot".to_string()));
    assert!(!a.contains(&"-S".to_string()));
    assert!(!a.contains(&"-bios".to_string()));
    assert!(!a.contains(&"-dtb".to_string()));
    let mut c = cfg(Board::Arm64Virt);
    c.dtb = Some("/d/virt.dtb".into());
    assert!(has_pair(&argv(&c), "-dtb", "/d/virt.dtb"));
}

#[test]
fn x86_q35_argv_with_kvm() {
    let mut c = cfg(Board::X86_64Q35);
    c.accel = Accel::Kvm;
    let a = argv(&c);
    assert_eq!(a[0], "qemu-system-x86_64");
    assert!(has_pair(&a, "-machine", "q35"));
    assert!(has_pair(&a, "-accel", "kvm"));
    assert!(has_pair(&a, "-cpu", "host"));
    assert!(has_pair(&a, "-bios", "qboot.rom"));
}

#[test]
fn root_ports_are_distinct_and_on_pcie0() {
    let a = argv(&cfg(Board::X86_64Q35));
    let ports: Vec<&String> = a
        .iter()
        .filter(|s| s.starts_with("pcie-root-port"))
        .collect();
    assert_eq!(ports.len(), crate::host::board::HOTPLUG_ROOT_PORTS);
    for (n, p) in ports.iter().enumerate() {
        assert!(p.contains(&format!("id=rp{n},")), "{p}");
        assert!(p.contains(&format!("chassis={},", n + 1)), "{p}");
        assert!(p.contains("bus=pcie.0"), "{p}");
    }
}

#[test]
fn sockets_console_waits_qmp_does_not() {
    let a = argv(&cfg(Board::Arm64Virt));
    assert!(has_pair(
        &a,
        "-chardev",
        "socket,id=con0,path=/t/con.sock,server=on,wait=on"
    ));
    assert!(has_pair(&a, "-serial", "chardev:con0"));
    assert!(has_pair(
        &a,
        "-chardev",
        "socket,id=qmp0,path=/t/qmp.sock,server=on,wait=off"
    ));
    assert!(has_pair(&a, "-mon", "chardev=qmp0,mode=control"));
}

/// A dumpable machine has a second monitor, the board's pvpanic device and a panic that pauses;
/// a plain one has none of them.
#[test]
fn a_dumpable_machine_pauses_on_panic_and_has_a_dump_monitor() {
    for board in [Board::X86_64Q35, Board::Arm64Virt] {
        let plain = argv(&cfg(board));
        assert!(!plain
            .iter()
            .any(|a| a.contains("pvpanic") || a == "-action"));
        assert!(!plain.iter().any(|a| a.contains("qmp1")));
        let mut c = cfg(board);
        c.vmcore_socket = Some("/t/dump.sock".into());
        let a = argv(&c);
        assert!(has_pair(
            &a,
            "-chardev",
            "socket,id=qmp1,path=/t/dump.sock,server=on,wait=off"
        ));
        assert!(has_pair(&a, "-mon", "chardev=qmp1,mode=control"));
        assert!(has_pair(&a, "-device", pvpanic_device(board)));
        assert!(has_pair(&a, "-action", "panic=pause"));
    }
    assert_eq!(pvpanic_device(Board::X86_64Q35), "pvpanic");
    assert!(pvpanic_device(Board::Arm64Virt).starts_with("pvpanic-pci,"));
}

#[test]
fn the_command_shell_is_a_virtio_console_after_the_other_devices() {
    let mut c = cfg(Board::Arm64Virt);
    let a = argv(&c);
    assert!(has_pair(&a, "-chardev", "null,id=shell0"));
    c.shell_fd = Some(7);
    let a = argv(&c);
    assert!(has_pair(&a, "-chardev", "socket,id=shell0,fd=7"));
    assert!(has_pair(
        &a,
        "-device",
        "virtconsole,chardev=shell0,bus=vser0.0"
    ));
    let pos = |v: &str| a.iter().position(|x| x == v).unwrap();
    assert!(pos("virtio-serial-pci,id=vser0,ioeventfd=off") > pos("virtio-rng-pci"));
}

#[test]
fn bare_console_on_stdio_without_qmp() {
    let mut c = cfg(Board::X86_64Q35);
    c.console_socket = None;
    c.qmp_socket = None;
    let a = argv(&c);
    assert!(has_pair(&a, "-chardev", "stdio,id=con0,signal=off"));
    assert!(!a.contains(&"-mon".to_string()));
}

#[test]
fn ssh_forward_binds_loopback_only() {
    let mut c = cfg(Board::Arm64Virt);
    assert!(has_pair(&argv(&c), "-netdev", "user,id=net0,restrict=on"));
    c.ssh_forward_port = Some(40022);
    assert!(has_pair(
        &argv(&c),
        "-netdev",
        "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22"
    ));
}

#[test]
fn the_guest_network_is_restricted_unless_asked_and_qemu_is_confined() {
    let mut c = cfg(Board::X86_64Q35);
    let a = argv(&c);
    assert!(has_pair(&a, "-netdev", "user,id=net0,restrict=on"), "{a:?}");
    assert!(has_pair(
        &a,
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
    ));
    c.outbound_network = true;
    c.sandbox = false;
    let a = argv(&c);
    assert!(has_pair(&a, "-netdev", "user,id=net0"), "{a:?}");
    assert!(!a.iter().any(|w| w == "-sandbox"));
}

#[test]
fn the_run_marker_is_one_name_argument() {
    let mut c = cfg(Board::Arm64Virt);
    let own = crate::host::artifacts::qemu_name(&crate::host::artifacts::run_id());
    assert!(has_pair(&argv(&c), "-name", &own));
    c.name = None;
    assert!(!argv(&c).contains(&"-name".to_string()));
    c.name = Some("rig-ci-42.s3".into());
    assert!(has_pair(&argv(&c), "-name", "rig-ci-42.s3"));
}

#[test]
fn paused_machine_without_kernel() {
    let mut c = cfg(Board::X86_64Q35);
    c.kernel = None;
    c.paused = true;
    let a = argv(&c);
    assert!(a.contains(&"-S".to_string()));
    assert!(!a.contains(&"-kernel".to_string()));
    assert!(!a.contains(&"-append".to_string()));
    assert!(!a.contains(&"-incoming".to_string()));
    c.incoming_defer = true;
    assert!(has_pair(&argv(&c), "-incoming", "defer"));
}

#[test]
fn cmdline_has_board_console_and_panic_exit() {
    let x = kernel_cmdline(Board::X86_64Q35, &[]).unwrap();
    assert!(x.starts_with("console=ttyS0 panic=-1"), "{x}");
    let a = kernel_cmdline(Board::Arm64Virt, &[]).unwrap();
    assert!(a.contains("console=ttyAMA0"));
    assert!(a.contains("memhp_default_state=offline"));
    assert!(a.contains("pty.legacy_count=0"));
}

#[test]
fn the_kernel_sets_up_the_network_when_its_config_can() {
    let config = |text: &str| crate::provision::kernel::parse_kconfig(text);
    let with = kernel_config_params(&config("CONFIG_IP_PNP=y\nCONFIG_NET=y\n"));
    assert_eq!(with, [KERNEL_IP_CONFIG]);
    assert!(kernel_config_params(&config("# CONFIG_IP_PNP is not set\n")).is_empty());
    assert!(kernel_config_params(&config("CONFIG_IP_PNP=m\n")).is_empty());
    // A user's own `ip=` replaces rig's.
    let mut extra = with;
    extra.push("ip=off".into());
    let l = kernel_cmdline(Board::Arm64Virt, &extra).unwrap();
    assert!(l.ends_with(" ip=off") && !l.contains("10.0.2.15"), "{l}");
}

#[test]
fn cmdline_extra_overrides_and_appends() {
    let l = kernel_cmdline(
        Board::X86_64Q35,
        &[
            "loglevel=4".into(),
            "rig.modules=a,b".into(),
            "quiet".into(),
        ],
    )
    .unwrap();
    assert!(l.contains("loglevel=4") && !l.contains("loglevel=7"), "{l}");
    assert!(l.ends_with("rig.modules=a,b quiet"), "{l}");
}

#[test]
fn scenario_devices_follow_the_board_devices() {
    let mut c = cfg(Board::Arm64Virt);
    c.devices = vec![
        ExtraDevice::Device {
            driver: "pci-testdev".into(),
            id: None,
            props: vec![],
        },
        ExtraDevice::Device {
            driver: "e1000e".into(),
            id: Some("nic9".into()),
            props: vec![("mac".into(), "52:54:00:00:00:09".into())],
        },
        ExtraDevice::VirtioMem {
            id: "vmem0".into(),
            size_mib: 1024,
        },
    ];
    let a = argv(&c);
    assert!(has_pair(&a, "-device", "pci-testdev"));
    assert!(has_pair(
        &a,
        "-device",
        "e1000e,id=nic9,mac=52:54:00:00:00:09"
    ));
    assert!(has_pair(
        &a,
        "-object",
        "memory-backend-ram,id=mem-vmem0,size=1024M"
    ));
    assert!(has_pair(
        &a,
        "-device",
        "virtio-mem-pci,id=vmem0,memdev=mem-vmem0,requested-size=0"
    ));
    // virtio-mem needs room above the booted memory.
    assert!(has_pair(&a, "-m", "512M,slots=4,maxmem=4096M"));
    let rng = a.iter().position(|x| x == "virtio-rng-pci").unwrap();
    let tdev = a.iter().position(|x| x == "pci-testdev").unwrap();
    assert!(rng < tdev, "board devices first");
}

#[test]
fn cmdline_rejects_malformed_params() {
    for (p, why) in [
        ("a b", "whitespace outside double quotes"),
        ("x=\"open", "unbalanced double quote"),
        ("", "empty parameter"),
        ("=v", "no name before `=`"),
        ("a\nb", "control character"),
        ("RIG-READY", "holds a rig console marker (`RIG-…`)"),
    ] {
        let e = kernel_cmdline(Board::X86_64Q35, &[p.into()]).unwrap_err();
        assert_eq!(
            e,
            CmdlineError::Malformed {
                param: p.into(),
                why
            }
        );
    }
    assert!(kernel_cmdline(Board::X86_64Q35, &["dyndbg=\"file x +p\"".into()]).is_ok());
    let long = format!("x={}", "a".repeat(CMDLINE_MAX));
    assert!(matches!(
        kernel_cmdline(Board::X86_64Q35, &[long]),
        Err(CmdlineError::TooLong { .. })
    ));
}
