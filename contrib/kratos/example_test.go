package strata_test

import (
	"context"
	"fmt"
	"time"

	"github.com/go-kratos/kratos/v2"
	kgrpc "github.com/go-kratos/kratos/v2/transport/grpc"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"

	strata "github.com/strata-registry/strata/contrib/kratos"
)

// The examples are compiled, not run: they need a cluster. They reach the
// meta node of `make run` on loopback as its development client, "dev"; in
// real code the addresses and credentials are your cluster's.
// TestKratos_AgainstACluster runs the same round trip against a cluster
// of the repository's binaries.

// meta and credentials are the examples' cluster (make run's).
var (
	meta        = client.WithMeta("127.0.0.1:9615")
	credentials = client.WithCredentials(client.CredentialsDir("run/certs", "dev"))
)

// A Kratos server registers through Strata: kratos.Registrar takes the
// Registry, and the App registers its servers' endpoints once they
// listen and deregisters them on Stop.
func Example_server() {
	ctx := context.Background()
	c, err := client.New(ctx, meta, credentials)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	srv := kgrpc.NewServer(kgrpc.Address(":9000"))
	// ... register your services on srv ...
	app := kratos.New(kratos.Name("com.example.Echo"), kratos.Version("v1.4.2"),
		kratos.Server(srv), kratos.Registrar(strata.New(discovery.New(c))))
	if err := app.Run(); err != nil {
		fmt.Println(err)
	}
}

// A Kratos client dials the service by name; the connection follows the
// service's instances as they come and go.
func Example_client() {
	ctx := context.Background()
	c, err := client.New(ctx, meta, credentials)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	conn, err := kgrpc.DialInsecure(ctx, kgrpc.WithEndpoint("discovery:///com.example.Echo"),
		kgrpc.WithDiscovery(strata.New(discovery.New(c))))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	// ... make a client of your service on conn and call it ...

	// GetService reads the list once.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := strata.New(discovery.New(c)).GetService(ctx, "com.example.Echo")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, si := range list {
		fmt.Println(si.ID, si.Version, si.Endpoints)
	}
	// Prints, for the server above on 10.0.0.1 (its ID the UUID Kratos
	// gave the App):
	// 0e5b7c1a-5d2f-11f0-9c3e-0242ac110002 v1.4.2 [grpc://10.0.0.1:9000]
}
