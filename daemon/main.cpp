#include <cstdio>
#include "isthmus_build.h"
int main() { std::printf("isthmusd %s\n", ISTHMUS_VERSION); return 0; }
