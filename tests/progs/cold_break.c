/* cold_break.c — calls green_dump, a function of libgreen.so's cold code (past the hot
 * part that cmake/hot_layout.cmake puts first; the libraries' constructors drop the cold
 * pages already mapped): tests/trim_test.sh sets a gdb breakpoint on it before `run`,
 * which must fire (the breakpoint's page is not dropped). */
#include <green.h>
#include <stdio.h>

int main(void)
{
    FILE *f = fopen("/dev/null", "w");
    if (!f || green_dump(f) != 0)
        return 1;
    fclose(f);
    puts("dumped");
    return 0;
}
