"""hearthdb test-host lab: disposable Debian 13 hosts as systemd-nspawn containers on a private bridge."""
