# tsbox syscall-program interpreter for x86-64 (Linux), the `fn` that libc clone() calls in the
# container's first process. ffi/clone.ts embeds the assembled bytes; ffi/clone_test.ts checks
# that this source still assembles to them (`as --64`, then the .text section).
#
# rdi = control block { ops: u64 ptr, count: u64, statusFd: u64 }
# op  = { nr: u64, args: u64[6], flags: u64 }  (64 bytes)
# flags: 1 IGNORE_ERROR, 2 FAIL_ON_ZERO, 4<<n ARGn_FROM_LAST (n = 0..5), 256 EXIT_IF_NONZERO
#   (a successful nonzero result ends the process with exit_group(0): the parent side of a
#   fork-like clone op leaves, the child, whose result is 0, runs on)
# Registers kept across the loop (callee-saved ones; `syscall` clobbers only rcx and r11):
#   r12 current op, r13 ops left, r14 status fd, r15 previous result,
#   rbx remembered errno of ignored failures, rbp op index.
# It never returns: an execve op succeeds, an EXIT_IF_NONZERO op exits 0, or it writes { opIndex | -1, errno } (16 bytes)
# to the status fd and calls exit_group(1).
	.intel_syntax noprefix
	.text
	.globl stub
stub:
	mov r12, [rdi]
	mov r13, [rdi + 8]
	mov r14, [rdi + 16]
	xor r15d, r15d
	xor ebx, ebx
	xor ebp, ebp
next_op:
	test r13, r13
	jz ran_out
	mov rax, [r12]
	mov rdi, [r12 + 8]
	mov rsi, [r12 + 16]
	mov rdx, [r12 + 24]
	mov r10, [r12 + 32]
	mov r8, [r12 + 40]
	mov r9, [r12 + 48]
	mov rcx, [r12 + 56]
	test ecx, 4
	cmovnz rdi, r15
	test ecx, 8
	cmovnz rsi, r15
	test ecx, 16
	cmovnz rdx, r15
	test ecx, 32
	cmovnz r10, r15
	test ecx, 64
	cmovnz r8, r15
	test ecx, 128
	cmovnz r9, r15
	syscall
	mov r15, rax
	mov rcx, [r12 + 56]
	cmp rax, -4095
	jae failed
	test rax, rax
	jnz nonzero
	test ecx, 2
	jz advance
	mov rax, -32
failed:
	neg rax
	test ecx, 1
	jz fatal
	test ebx, ebx
	jz remember
	cmp ebx, 2
	jne advance
remember:
	mov ebx, eax
advance:
	add r12, 64
	inc rbp
	dec r13
	jmp next_op
ran_out:
	mov rbp, -1
	jmp report
fatal:
	mov rbx, rax
report:
	push rbx
	push rbp
	mov eax, 1
	mov rdi, r14
	mov rsi, rsp
	mov edx, 16
	syscall
	mov eax, 231
	mov edi, 1
	syscall
	hlt
nonzero:
	test ecx, 256
	jz advance
	mov eax, 231
	xor edi, edi
	syscall
	hlt
