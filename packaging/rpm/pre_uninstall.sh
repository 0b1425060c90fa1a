# mcr %preun: stop running relays on erase (not on upgrade).
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl stop mcrd.service 'mcrd@*.service' >/dev/null 2>&1 || :
fi
