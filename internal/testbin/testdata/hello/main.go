// hello is what the testbin tests build.
package main

import "fmt"

func main() { fmt.Println("hello from testbin") }
