package sim

import "time"

// verifyThingsBoard checks an access-token login (reference 3.8): the user name is the device's
// access token; any client id; the password is not looked at. CONNACK 4 for an empty user name,
// 5 for a token no device has (the reference's codes). Devices: the access tokens.
func verifyThingsBoard(c cloudConnect, devices map[string]string) verdict {
	if c.username == "" {
		return refuse(rcBadUserPassword, "no access token: the user name is empty")
	}
	if _, ok := devices[c.username]; !ok {
		return refuse(rcNotAuthorized, "no device has this access token")
	}
	return accept(c.username, time.Time{})
}
