# shellcheck shell=bash
# Shared by the benchmark runners (source after scripts/lib.sh).

CLK_TCK="$(getconf CLK_TCK)"

# cpu_ticks: busy and stolen CPU ticks of the whole machine so far.
cpu_ticks() {
  local _ user nice system irq softirq steal
  read -r _ user nice system _ _ irq softirq steal _ </proc/stat  # cpu user nice system idle iowait irq softirq steal
  echo "$((user + nice + system + irq + softirq)) $steal"
}

# print_machine: date, host and how busy the machine is right now, with a
# warning when something else is using the CPUs.
print_machine() {
  echo "date:  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "host:  $(uname -srm), nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
  echo "load:  $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at start"
  # The load average trails by minutes; what runs right now is a better hint.
  local b0 b1 busy_pct
  read -r b0 _ < <(cpu_ticks)
  sleep 1
  read -r b1 _ < <(cpu_ticks)
  busy_pct=$(((b1 - b0) * 100 / CLK_TCK / $(nproc)))
  echo "busy:  ${busy_pct}% of the CPUs over the last second"
  if ((busy_pct > 25)); then
    warn "something else is using the CPUs: expect noisy results (see the 'other' column)"
  fi
}
