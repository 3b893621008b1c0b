"""Pure pieces of the lab: names, addresses, MACs, rendered files. No root, no hosts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab import cli, config, hosts, state


def test_names_and_addresses() -> None:
    assert config.host_name(1) == "hdb1"
    assert config.host_index("hdb12") == 12
    assert config.host_address("hdb1") == "10.213.7.11"
    assert config.host_address("hdb99") == "10.213.7.109"
    for bad in ("hdb0", "hdb100", "hdb01", "db1", "hdb1 ", ""):
        with pytest.raises(ValueError):
            config.host_index(bad)
    with pytest.raises(ValueError):
        config.host_name(0)


def test_macs_are_fixed_unique_and_locally_administered() -> None:
    macs = [config.BRIDGE_MAC]
    for i in range(1, config.MAX_HOSTS + 1):
        name = config.host_name(i)
        macs += [config.veth_host_mac(name), config.veth_guest_mac(name)]
    assert len(set(macs)) == len(macs)
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0b10 and not first & 0b01, mac  # locally administered, unicast
    # Same name, same MAC: a reset host keeps its MAC, so peers' ARP caches stay right.
    assert config.veth_guest_mac("hdb7") == config.veth_guest_mac("hdb7") == "02:68:64:02:00:07"


def test_veth_names_fit_kernel_limit() -> None:
    assert len(config.veth_host_side(config.host_name(config.MAX_HOSTS))) <= 15


def test_ssh_config_rendering() -> None:
    text = state.render_ssh_config(["hdb1", "hdb2"], Path("/s"), Path("/s/id_ed25519"))
    blocks = [b for b in text.split("\n\n") if b.startswith("Host ")]
    assert len(blocks) == 2
    first = dict(line.strip().split(" ", 1) for line in blocks[0].splitlines())
    assert first == {
        "Host": "hdb1",
        "HostName": "10.213.7.11",
        "User": "root",
        "IdentityFile": "/s/id_ed25519",
        "IdentitiesOnly": "yes",
        "StrictHostKeyChecking": "no",
        "UserKnownHostsFile": "/dev/null",
        "LogLevel": "ERROR",
        "ControlMaster": "auto",
        "ControlPath": "/s/cm-%h",
        "ControlPersist": "60s",
    }
    assert "HostName 10.213.7.12" in blocks[1]
    assert state.render_ssh_config([], Path("/s"), Path("/k")).count("Host ") == 0


def test_publish_writes_hosts_json_and_ssh_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTHDB_LAB_DIR", str(tmp_path))
    state.publish(["hdb1", "hdb3"])
    entries = json.loads((tmp_path / "hosts.json").read_text())
    assert entries == [
        {"name": "hdb1", "address": "10.213.7.11", "user": "root", "port": 22, "key": str(tmp_path / "id_ed25519")},
        {"name": "hdb3", "address": "10.213.7.13", "user": "root", "port": 22, "key": str(tmp_path / "id_ed25519")},
    ]
    assert "Host hdb3" in (tmp_path / "ssh_config").read_text()
    state.publish([])
    assert json.loads((tmp_path / "hosts.json").read_text()) == []


def test_state_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTHDB_LAB_DIR", str(tmp_path))
    st = state.LabState(
        proxy={"pid": 10, "start": 5}, hosts={"hdb2": state.HostState(proc={"pid": 11, "start": 6}, layer="postgresql")}
    )
    state.save(st)
    back = state.load()
    assert back.to_json() == st.to_json()
    assert [h["name"] for h in json.loads((tmp_path / "hosts.json").read_text())] == ["hdb2"]


def test_etc_hosts_lists_self_on_127_0_1_1_and_peers() -> None:
    text = hosts.hosts_file("hdb2", ["hdb1", "hdb2", "hdb3"])
    lines = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    assert ["127.0.1.1", "hdb2"] in lines
    assert ["10.213.7.11", "hdb1"] in lines
    assert ["10.213.7.13", "hdb3"] in lines
    assert not any(words[0] == "10.213.7.12" for words in lines)


def test_network_file_is_static_without_gateway_or_dns() -> None:
    text = hosts.network_file("hdb3")
    assert "Name=eth0" in text
    assert "Address=10.213.7.13/24" in text
    assert "Gateway" not in text and "DNS" not in text


def test_cli_refuses_non_root(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli.main(["status"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "must run as root" in err


def test_vm_qemu_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The VM boots the vm layer's own kernel and initramfs from a virtio disk, on a tap named like a
    container's veth (so teardown removes both alike), with the container's guest MAC; software emulation
    uses every core, KVM hides the MSR some nested hypervisors refuse."""
    from lab import vm

    monkeypatch.setattr(vm, "kernel_files", lambda: ("/k/vmlinuz-6.12", "/k/initrd.img-6.12"))
    monkeypatch.setenv("HEARTHDB_LAB_DIR", str(tmp_path))
    args = vm.qemu_args("hdb20", False, tmp_path / "console.log")
    joined = " ".join(args)
    assert args[0] == "qemu-system-x86_64"
    assert "-kernel /k/vmlinuz-6.12 -initrd /k/initrd.img-6.12" in joined
    assert "root=/dev/vda rw console=ttyS0 net.ifnames=0" in joined
    assert f"file={tmp_path}/hosts/hdb20/disk.raw,format=raw,if=virtio" in joined
    assert f"tap,id=n0,ifname={config.veth_host_side('hdb20')},script=no" in joined
    assert f"mac={config.veth_guest_mac('hdb20')}" in joined
    assert "-accel tcg,thread=multi" in joined and "kvm" not in joined
    assert vm.accel_args(True) == ["-accel", "kvm", "-cpu", "host,-arch-capabilities"]
