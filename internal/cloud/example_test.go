package cloud_test

import (
	"fmt"

	"github.com/gatewayd/gatewayd/internal/cloud"
)

func ExampleAliyunSign() {
	c, err := cloud.AliyunSign(cloud.AliyunParams{
		ProductKey:   "a1B2c3D4e5F",
		DeviceName:   "pi-led-01",
		DeviceSecret: "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE",
		SignMethod:   cloud.HMACSHA1,
		Timestamp:    1700000000000,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.ClientID)
	fmt.Println(c.Username)
	fmt.Println(c.Password)
	// Output:
	// pi-led-01|securemode=3,signmethod=hmacsha1,timestamp=1700000000000|
	// pi-led-01&a1B2c3D4e5F
	// 69d84ceca71bf26dd9cc21f8d74d3a330495bb83
}
