# rig's gdb commands for an arm64 vmcore (written beside it as vmcore.gdb; gdb -x loads it).
# `rig-interrupted`: for each vCPU stopped in a synchronous exception (an abort, a BUG or WARN's
# brk), the function it interrupted (pt_regs.pc, the regs el1h_64_sync saved at its sp) and its
# callers along the frame records from pt_regs.x29: the frames gdb's backtrace cannot unwind to.
define rig-at
  frame function $arg0
  set $rig_regs = (unsigned long *)$sp
  printf "vCPU's task was interrupted in:\n"
  info symbol $rig_regs[32]
  printf "called from (frame records):\n"
  set $rig_fp = $rig_regs[29]
  set $rig_n = 0
  while $rig_fp != 0 && $rig_n < 32
    info symbol ((unsigned long *)$rig_fp)[1]
    set $rig_fp = ((unsigned long *)$rig_fp)[0]
    set $rig_n = $rig_n + 1
  end
end
define rig-interrupted
  thread apply all -s rig-at el1h_64_sync
end
