/* confdefs.h */
#define PACKAGE_NAME "peercling"
#define PACKAGE_TARNAME "peercling"
#define PACKAGE_VERSION "0.1.0"
#define PACKAGE_STRING "peercling 0.1.0"
#define PACKAGE_BUGREPORT "https://example.invalid/peercling/issues"
#define PACKAGE_URL ""
#define PACKAGE "peercling"
#define VERSION "0.1.0"
