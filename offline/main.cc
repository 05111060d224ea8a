// mixserve-offline: the pipeline from parallel text to servable models (docs/offline.md).
#include "offline/commands.h"

int main(int argc, char** argv) { return mixserve::offline::Main(argc, argv); }
