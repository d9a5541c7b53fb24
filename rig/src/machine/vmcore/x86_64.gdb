# rig's gdb commands for an x86_64 vmcore (written beside it as vmcore.gdb; gdb -x loads it).
# `rig-interrupted`: for each vCPU stopped in an exception (a page fault, a BUG or WARN's ud2, a
# general protection fault), the function it interrupted (pt_regs.ip, the regs the asm_exc_*
# entry saved at its sp) and the kernel text addresses on the interrupted stack (rig's kernels
# have no frame pointers: a scan, like the kernel's own unreliable trace).
define rig-at
  frame function $arg0
  set $rig_regs = (unsigned long *)$sp
  printf "vCPU's task was interrupted in:\n"
  info symbol $rig_regs[16]
  printf "kernel text addresses on its stack (a scan, as the kernel's own unreliable trace):\n"
  set $rig_at = (unsigned long *)$rig_regs[19]
  set $rig_n = 0
  while $rig_n < 96
    if $rig_at[$rig_n] >= (unsigned long)&_stext && $rig_at[$rig_n] < (unsigned long)&_etext
      info symbol $rig_at[$rig_n]
    end
    set $rig_n = $rig_n + 1
  end
end
define rig-interrupted
  thread apply all -s rig-at asm_exc_page_fault
  thread apply all -s rig-at asm_exc_invalid_op
  thread apply all -s rig-at asm_exc_general_protection
end
