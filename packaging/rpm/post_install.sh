# mcr %post: the mcr user and group and /run/mcr; units not enabled.
systemd-sysusers /usr/lib/sysusers.d/mcr.conf >/dev/null 2>&1 || :
systemd-tmpfiles --create /usr/lib/tmpfiles.d/mcr.conf >/dev/null 2>&1 || :
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || :; fi
